"""The one schema library (`vocalsep.schema`): what it accepts, the structured problem it reports, and the
wording hooks through which params.yaml, the corpus spec and the sources manifests each word that problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from vocalsep.corpus.spec import Group, Package
from vocalsep.schema import ParamsError, Problem, Text, build, must, ranged
from vocalsep.sources import Source


@dataclass(frozen=True)
class Song:
    url: str = must("the song's URL")
    role: Literal["acapella", "instrumental"] = "acapella"
    title: Text | None = must("text", None)
    rate: int | None = ranged(None, ge=0, must="a whole number of Hz")
    low: float = 0.0
    high: float = 1.0
    derived: str = field(init=False, default="")

    RULES = (("high", lambda s: s.high > s.low, "must be above low ({low:g}), got {high:g}; {hint}"),)

    @property
    def hint(self) -> str:
        return "raise it"


def problem_of(values: dict) -> Problem:
    seen: list[Problem] = []

    def say(problem: Problem) -> str:
        seen.append(problem)
        return "worded"

    with pytest.raises(KeyError, match="worded"):
        build(Song, values, say=say, error=KeyError)
    return seen[0]


def test_text_takes_numbers_as_their_text_and_optional_fields_take_null():
    song = build(Song, {"url": "https://x", "title": 1984, "rate": None})
    assert song.title == "1984" and song.rate is None and song.role == "acapella"


@pytest.mark.parametrize("values, kind, names", [
    ({}, "missing", ("url",)),
    ({"url": ""}, "missing", ("url",)),
    ({"url": None}, "missing", ("url",)),
    ({"url": "u", "role": None}, "choice", ("role",)),  # a null choice is a wrong choice: the words list the right ones
    ({"url": "u", "role": "vocals"}, "choice", ("role",)),
    ({"url": "u", "titel": "x", "zz": 1}, "unknown", ("titel", "zz")),
    ({"url": "u", "derived": "x"}, "unknown", ("derived",)),  # a field the class computes is not a key
    ({"url": "u", "title": [1]}, "type", ("title",)),
    ({"url": "u", "title": True}, "type", ("title",)),
    ({"url": "u", "rate": -1}, "range", ("rate",)),
    ({"url": "u", "low": 2.0}, "rule", ("high",)),
])
def test_each_problem_has_its_kind_and_key(values, kind, names):
    problem = problem_of(values)
    assert (problem.kind, problem.names) == (kind, names)


def test_a_problem_carries_what_the_document_needs_to_word_it():
    assert problem_of({"url": "u", "rate": 1.5}).must == "a whole number of Hz"  # the field's own words
    assert problem_of({"url": "u", "rate": -2}).must == "a whole number of Hz"
    assert problem_of({"url": "u", "title": []}).must == "text"
    assert problem_of({}).must == "the song's URL"
    choice = problem_of({"url": "u", "role": "vocals"})
    assert choice.allowed == ("acapella", "instrumental") and choice.value == "vocals"
    unknown = problem_of({"url": "u", "titel": "x"})
    assert unknown.closest == (("titel", "title"),) and "did you mean title?" in unknown.did_you_mean()
    assert "derived" not in unknown.allowed
    assert problem_of({"url": "u", "low": 2.0}).must == "must be above low (2), got 1; raise it"  # fields and properties


def test_params_wording_is_the_default_and_names_the_dotted_key():
    with pytest.raises(ParamsError, match=r"^song\.rate: must be >= 0, got -1$"):
        build(Song, {"url": "u", "rate": -1}, "song")
    with pytest.raises(ParamsError, match=r"song\.titel -> did you mean song\.title\?"):
        build(Song, {"url": "u", "titel": 1}, "song")
    with pytest.raises(ParamsError, match=r"missing key\(s\) song\.url"):
        build(Song, {}, "song")


def test_nested_problems_say_where_they_are():
    entry = {"package": "p", "version": "1", "sha256": "a" * 64, "license": "l", "attribution": "a",
             "groups": [{"set": "train", "role": "acapella", "include": ["x"]}, {"set": "eval", "role": "x", "include": ["y"]}]}
    seen: list[Problem] = []
    with pytest.raises(ValueError):
        build(Package, entry, say=lambda p: seen.append(p) or "x", error=ValueError)
    assert (seen[0].kind, seen[0].at, seen[0].names) == ("choice", "groups[1]", ("role",))


def test_the_three_documents_are_built_by_the_one_library():
    """params.yaml, the corpus spec's packages and groups, and manifest entries all go through schema.build."""
    assert build(Source, {"url": "https://x/a", "role": "instrumental"}).id  # id derived, not a key
    assert build(Group, {"set": "eval", "role": "acapella", "include": ["a"], "conditions": "seen"}).conditions == "seen"
    with pytest.raises(ParamsError, match="conditions"):
        build(Group, {"set": "train", "role": "acapella", "include": ["a"], "conditions": "seen"})
