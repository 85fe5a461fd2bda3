"""The embedded demo corpus: voice-like acapellas and band-like instrumentals synthesised from a seed
(`corpus`: the voice, the files and the manifest; `band`: drums, bass and chords)."""
