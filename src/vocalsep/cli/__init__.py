"""The `vocalsep` command: the dispatcher (`main`) and one module per command that is more than a stage's
`main` (`separate`, `stream`, `models`, `summary`). Argument parsing and messages only; the work is in the
rooms below."""
