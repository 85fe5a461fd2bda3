"""The shipped base models' life: loading `pretrained/` and `pretrained-live/` (`weights`), publishing a
trained checkpoint as one with its model card (`publish`), and the base model in the registry, a contender
in every promotion (`contender`, `vocalsep register-base`)."""
