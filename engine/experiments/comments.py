"""Tags for what users say in feedback comments: a rule classifier (keyword patterns, a
negation guard), with no external service, so the A/B report can count, per variant, the
issues users name ("too dark", "blurry", "wrong style", ...).

Our own: the task is a handful of domain phrases, which a pattern list states plainly and
a test pins; a trained model or a hosted service would add a dependency for no gain here.
"""

from __future__ import annotations

import re

__all__ = ["ISSUES", "tags"]

# issue -> patterns (lower-case regexes over words); the first words of each issue name it
ISSUES: dict[str, tuple[str, ...]] = {
    "too dark": (r"too dark", r"\bdark(er)?\b", r"underexposed", r"\bdim\b", r"gloomy"),
    "too bright": (r"too bright", r"overexposed", r"washed[ -]out", r"blown[ -]out", r"\bglar(e|ing)\b"),
    "blurry": (r"blurr?(y|ed)?\b", r"out of focus", r"\bfuzzy\b", r"not sharp", r"\bsoft\b"),
    "wrong style": (
        r"wrong style",
        r"not (my|the) style",
        r"style is (off|wrong)",
        r"too (cartoon|realistic)\w*",
    ),
    "wrong colors": (
        r"wrong colou?rs?",
        r"colou?rs? (are |is )?(off|wrong|weird)",
        r"oversaturated",
        r"too saturated",
    ),
    "artifacts": (
        r"artifacts?",
        r"artefacts?",
        r"glitch\w*",
        r"distort\w*",
        r"extra (fingers|limbs)",
        r"noisy",
    ),
    "wrong content": (
        r"not what i asked",
        r"wrong (subject|object|content|person)",
        r"missing\b",
        r"doesn'?t match",
    ),
    "too slow": (r"too slow", r"took (too long|forever)", r"\bslow\b"),
    "too expensive": (r"too expensive", r"\bcost(s|ly)? too much\b", r"\bpricey\b"),
    "text errors": (r"misspell\w*", r"garbled text", r"text is (wrong|garbled|unreadable)", r"typos?"),
}
_RULES = {issue: [re.compile(p) for p in patterns] for issue, patterns in ISSUES.items()}
_NEGATION = re.compile(r"\b(not|no|never|isn'?t|wasn'?t|aren'?t|without)\s+(\w+\s+){0,1}$")


def tags(comment: str) -> list[str]:
    """The issues a comment names, in `ISSUES` order; a match right after a negation
    ("not blurry", "isn't too dark") does not count."""
    text = " ".join(comment.lower().split())
    found = []
    for issue, rules in _RULES.items():
        for rule in rules:
            if any(not _NEGATION.search(text[: m.start()]) for m in rule.finditer(text)):
                found.append(issue)
                break
    return found
