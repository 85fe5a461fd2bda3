"""The real corpus: redistributable recordings from pinned Debian packages.

A corpus spec (`sources/debian-corpus.yaml`) lists packages with a pinned
version and sha256, their licence and attribution, and groups of audio inside
each: which files (globs), which role, which set (`train` or `eval`) and
whether short utterances are joined into longer acapella tracks.

`build_corpus` fetches each package once with `apt-get download` (nothing is
installed), checks its sha256, keeps the .deb in a cache, extracts only the
audio it needs (never a path outside the destination), joins utterances with
natural pauses, and writes for the chosen set a sources manifest of relative
`file:` URLs and an ATTRIBUTION.md. The download stage then ingests that
manifest like anyone's URLs.

Modules: `spec` (the YAML, checked), `debs` (fetch, verify, extract), `join` (utterances into tracks),
`build` (a set, its manifest and attribution).
"""
