"""Training mechanics behind the train stage: losses, steps, resumable state, DDP, reports."""
