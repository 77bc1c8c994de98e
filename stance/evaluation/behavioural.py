"""CheckList-style behavioural tests for stance models (Ribeiro et al., ACL 2020).

Templates live in ``data/behavioural/templates.json`` and are expanded deterministically
(no randomness: slot values are picked by rotation over the case index) into :class:`Case`
objects of three kinds:

``MFT`` (minimum functionality test)
    One text and an expected label. **Pass**: the predicted label (argmax of
    ``predict_proba``, ties to the earlier label in ``LABELS``) equals ``expected``.
``INV`` (invariance test)
    An original text and >= 1 variants that should not change the label (speaker swap,
    platform/country swap, attribution verb, neutral lead-in). **Pass**: every text of the case
    gets the same predicted label as the original. ``expected`` is the label the template
    author intended for the original; it is reported (``original_accuracy``), not used to pass.
``DIR`` (directional expectation test)
    An original that reports a claim for side ``expected`` and variants that report its denial
    or its negation. **Pass**: for every variant ``v``, either ``P(v)[side] <= P(o)[side] -
    DIR_MIN_DROP`` (the probability of the original side falls), or the original is predicted
    as ``side`` and the variant is not (the label moves away from the side).

The template file has ``lexicons`` (slot name -> values), ``claims`` (side -> list of
``{"claim", "negated"}``) and ``tests``; each test has ``name``, ``kind``, ``rule`` and a
``generator``:

``sentences``
    MFT only: literal ``sentences`` plus ``templates`` (``{"template", "slots"}``) expanded
    over the full product of their slot values, in the order written. A sentence may be
    ``{"text", "label"}`` with its own expected label: minimal pairs (the same topic words,
    different sides) list both members so, under one test.
``claims``
    One case per claim, interleaving the two sides (scanning 0, encryption 0, scanning 1, ...).
    The claim at position ``p`` of side ``s`` (0 scanning, 1 encryption) has rotation index
    ``r = p + s + offset``: its original uses ``frames[r % len(frames)]`` with slots ``{claim}``,
    ``{Claim}`` (capitalised), ``{negated}`` and lexicon slots, lexicon value
    ``values[r % len(values)]`` (so each side meets every frame and value). Variants are either
    the ``variants`` frames filled with the same values, or (``vary``) the original frame with the
    varied slots moved on by ``k * (len(values) // (n_variants + 1))`` for ``k = 1..n_variants``.
``swap``
    One case per item ``{"label", "text"}``; the ``vary`` slots are rotated as above.

Every text has its whitespace collapsed and its first character upper-cased.
"""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stance.labels import LABEL_TO_ID, LABELS, STANCE_LABELS, check_label
from stance.paths import data_dir

KINDS: tuple[str, ...] = ("MFT", "INV", "DIR")
GENERATORS: tuple[str, ...] = ("sentences", "claims", "swap")
# A DIR variant must lower the original side's probability by at least this much (float noise guard).
DIR_MIN_DROP: float = 1e-6
CLAIM_SLOTS: frozenset[str] = frozenset({"claim", "Claim", "negated"})


class TemplateError(ValueError):
    """The template file is malformed (unknown kind, label, generator or slot, bad case)."""


class ProbaModel(Protocol):
    """Anything with the model contract's ``predict_proba(texts) -> (n, 3)`` in ``LABELS`` order."""

    def predict_proba(self, texts: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class Case:
    """One behavioural test case.

    ``texts[0]`` is the MFT text or the INV/DIR original; ``texts[1:]`` are the variants.
    ``expected``: the required label (MFT), the original claim's side (DIR) or the intended
    label of the original (INV, informational). ``rule`` says what the test checks.
    """

    test_type: str
    kind: str
    texts: tuple[str, ...]
    expected: str | None
    rule: str
    case_id: str = ""

    @property
    def original(self) -> str:
        return self.texts[0]

    @property
    def variants(self) -> tuple[str, ...]:
        return self.texts[1:]


def default_templates_path() -> Path:
    """``data/behavioural/templates.json`` under the project root."""
    return data_dir() / "behavioural" / "templates.json"


def build_cases(path: str | Path | None = None) -> list[Case]:
    """Expand the template file at ``path`` (default :func:`default_templates_path`) into cases.

    Returns the cases in file order, each test's cases numbered ``<test>-000``, ``<test>-001``...
    Raises ``FileNotFoundError`` if the file is missing and :class:`TemplateError` if it is
    malformed. The same file always gives the same list.
    """
    source = Path(path) if path is not None else default_templates_path()
    if not source.is_file():
        raise FileNotFoundError(f"no behavioural templates at {source}")
    try:
        spec = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TemplateError(f"{source} is not valid JSON: {error}") from error
    return expand_templates(spec)


def expand_templates(spec: Mapping[str, Any]) -> list[Case]:
    """Expand an already-parsed template mapping (see the module docstring) into cases.

    Raises :class:`TemplateError` on any malformed part.
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("tests"), list):
        raise TemplateError("templates need a 'tests' list")
    lexicons = _lexicons(spec.get("lexicons", {}))
    claims = _claims(spec.get("claims", {}))
    cases: list[Case] = []
    names: set[str] = set()
    for test in spec["tests"]:
        name = str(test.get("name", ""))
        kind = test.get("kind")
        if not name or name in names:
            raise TemplateError(f"test name {name!r} is empty or repeated")
        names.add(name)
        if kind not in KINDS:
            raise TemplateError(f"test {name}: kind {kind!r} is not one of {KINDS}")
        generator = test.get("generator")
        if generator == "sentences":
            groups = _generate_sentences(name, test)
        elif generator == "claims":
            groups = _generate_claims(name, test, lexicons, claims)
        elif generator == "swap":
            groups = _generate_swap(name, test, lexicons)
        else:
            raise TemplateError(f"test {name}: generator {generator!r} is not one of {GENERATORS}")
        rule = str(test.get("rule", "")).strip()
        if not rule:
            raise TemplateError(f"test {name}: missing 'rule'")
        for number, (texts, expected) in enumerate(groups):
            case = Case(name, kind, texts, expected, rule, f"{name}-{number:03d}")
            _check_case(case)
            cases.append(case)
    return cases


# ----------------------------------------------------------------------------------- expansion


def _lexicons(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping):
        raise TemplateError("'lexicons' must map slot names to lists of strings")
    out: dict[str, list[str]] = {}
    for slot, values in raw.items():
        if slot in CLAIM_SLOTS:
            raise TemplateError(f"lexicon slot {slot!r} clashes with a claim slot")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise TemplateError(f"lexicon {slot!r} must be a non-empty list of strings")
        if len(set(values)) != len(values):
            raise TemplateError(f"lexicon {slot!r} repeats a value")
        out[str(slot)] = list(values)
    return out


def _claims(raw: Any) -> list[tuple[str, int, dict[str, str]]]:
    """Claims as ``(side, rotation, {"claim", "negated"})``, interleaving the sides in ``STANCE_LABELS`` order.

    ``rotation`` is the claim's position within its side plus the side's number.
    """
    if not isinstance(raw, Mapping):
        raise TemplateError("'claims' must map a side to a list of claims")
    per_side: list[list[tuple[str, int, dict[str, str]]]] = []
    for side_number, side in enumerate(STANCE_LABELS):
        rows = []
        for position, item in enumerate(raw.get(side, [])):
            if not isinstance(item, Mapping) or not all(
                isinstance(item.get(key), str) and item.get(key) for key in ("claim", "negated")
            ):
                raise TemplateError(f"claim {position} of {side} needs 'claim' and 'negated' strings")
            rows.append((side, position + side_number, {"claim": item["claim"], "negated": item["negated"]}))
        per_side.append(rows)
    unknown = set(raw) - set(STANCE_LABELS)
    if unknown:
        raise TemplateError(f"claims for unknown sides {sorted(unknown)}")
    interleaved = []
    for pair in itertools.zip_longest(*per_side):
        interleaved.extend(row for row in pair if row is not None)
    return interleaved


def _fields(template: str) -> list[str]:
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:
        raise TemplateError(f"bad template {template!r}: {error}") from error
    for field in names:
        if not field.isidentifier():
            raise TemplateError(f"template {template!r} has a bad slot {{{field}}}")
    return names


def _fill(template: str, values: Mapping[str, str]) -> str:
    missing = [field for field in _fields(template) if field not in values]
    if missing:
        raise TemplateError(f"template {template!r} uses unknown slots {missing}")
    text = " ".join(template.format_map(values).split())
    return text[:1].upper() + text[1:]


def _spacing(values: Sequence[str], n_variants: int, where: str) -> int:
    if len(values) < n_variants + 1:
        raise TemplateError(f"{where}: {len(values)} values cannot give {n_variants} distinct variants")
    return len(values) // (n_variants + 1)


def _rotated(
    lexicons: Mapping[str, list[str]],
    slots: Iterable[str],
    index: int,
    vary: Sequence[str],
    step: int,
    n_variants: int,
    where: str,
) -> dict[str, str]:
    """Slot values for text ``step`` (0 = original) of case ``index``."""
    values: dict[str, str] = {}
    for slot in slots:
        if slot in CLAIM_SLOTS or slot in values:
            continue
        if slot not in lexicons:
            raise TemplateError(f"{where}: unknown slot {{{slot}}}")
        pool = lexicons[slot]
        shift = step * _spacing(pool, n_variants, f"{where} slot {slot}") if slot in vary else 0
        values[slot] = pool[(index + shift) % len(pool)]
    return values


def _vary_spec(name: str, test: Mapping[str, Any]) -> tuple[list[str], int]:
    vary = test.get("vary", [])
    if isinstance(vary, str):
        vary = [vary]
    n_variants = test.get("n_variants", 0)
    if not isinstance(n_variants, int) or isinstance(n_variants, bool) or n_variants < 0:
        raise TemplateError(f"test {name}: n_variants must be a non-negative integer")
    if bool(vary) != bool(n_variants):
        raise TemplateError(f"test {name}: 'vary' and 'n_variants' go together")
    return [str(slot) for slot in vary], n_variants


def _generate_sentences(name: str, test: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str | None]]:
    expected = test.get("expected")
    labelled: list[tuple[str, str | None]] = []
    for sentence in test.get("sentences", []):
        if isinstance(sentence, Mapping):
            if not isinstance(sentence.get("text"), str) or "label" not in sentence:
                raise TemplateError(f"test {name}: a labelled sentence needs 'text' and 'label'")
            labelled.append((_fill(sentence["text"], {}), sentence["label"]))
        else:
            labelled.append((_fill(sentence, {}), expected))
    for item in test.get("templates", []):
        template, slots = item.get("template"), item.get("slots", {})
        if not isinstance(template, str) or not isinstance(slots, Mapping):
            raise TemplateError(f"test {name}: each template needs 'template' and 'slots'")
        order = list(slots)
        for combo in itertools.product(*(slots[slot] for slot in order)):
            labelled.append((_fill(template, dict(zip(order, combo, strict=True))), expected))
    if not labelled:
        raise TemplateError(f"test {name}: no sentences")
    return [((text,), label) for text, label in labelled]


def _generate_claims(
    name: str,
    test: Mapping[str, Any],
    lexicons: Mapping[str, list[str]],
    claims: list[tuple[str, int, dict[str, str]]],
) -> list[tuple[tuple[str, ...], str | None]]:
    frames = test.get("frames")
    variants = test.get("variants", [])
    vary, n_variants = _vary_spec(name, test)
    offset = int(test.get("offset", 0))
    if not isinstance(frames, list) or not frames:
        raise TemplateError(f"test {name}: needs a non-empty 'frames' list")
    if bool(variants) == bool(vary):
        raise TemplateError(f"test {name}: give exactly one of 'variants' or 'vary'")
    if not claims:
        raise TemplateError(f"test {name}: the template file has no claims")
    groups = []
    for side, rotation, claim in claims:
        index = rotation + offset
        frame = frames[index % len(frames)]
        base = {
            "claim": claim["claim"],
            "Claim": claim["claim"][:1].upper() + claim["claim"][1:],
            "negated": claim["negated"],
        }
        slots = [field for template in [frame, *variants] for field in _fields(template)]
        where = f"test {name}"
        if vary:
            texts = tuple(
                _fill(frame, base | _rotated(lexicons, slots, index, vary, step, n_variants, where))
                for step in range(n_variants + 1)
            )
        else:
            values = base | _rotated(lexicons, slots, index, [], 0, 0, where)
            texts = tuple(_fill(template, values) for template in [frame, *variants])
        groups.append((texts, side))
    return groups


def _generate_swap(
    name: str, test: Mapping[str, Any], lexicons: Mapping[str, list[str]]
) -> list[tuple[tuple[str, ...], str | None]]:
    vary, n_variants = _vary_spec(name, test)
    offset = int(test.get("offset", 0))
    if not vary:
        raise TemplateError(f"test {name}: a swap test needs 'vary' and 'n_variants'")
    groups = []
    for index, item in enumerate(test.get("items", [])):
        template, label = item.get("text"), item.get("label")
        if not isinstance(template, str):
            raise TemplateError(f"test {name}: item {index} needs a 'text'")
        slots = _fields(template)
        if not set(vary) & set(slots):
            raise TemplateError(f"test {name}: item {index} uses none of the varied slots {vary}")
        texts = tuple(
            _fill(template, _rotated(lexicons, slots, index + offset, vary, step, n_variants, f"test {name}"))
            for step in range(n_variants + 1)
        )
        groups.append((texts, label))
    if not groups:
        raise TemplateError(f"test {name}: no items")
    return groups


def _check_case(case: Case) -> None:
    where = f"case {case.case_id}"
    if case.expected is not None:
        try:
            check_label(case.expected, where)
        except ValueError as error:
            raise TemplateError(str(error)) from error
    if case.kind == "MFT":
        if len(case.texts) != 1 or case.expected is None:
            raise TemplateError(f"{where}: an MFT case has one text and an expected label")
    elif len(case.texts) < 2 or len(set(case.texts)) != len(case.texts):
        raise TemplateError(f"{where}: an {case.kind} case needs an original and distinct variants")
    if case.kind == "DIR" and case.expected not in STANCE_LABELS:
        raise TemplateError(f"{where}: a DIR case's original side must be one of {STANCE_LABELS}")
    for text in case.texts:
        if not text or "{" in text or "}" in text:
            raise TemplateError(f"{where}: empty or unfilled text {text!r}")


# ------------------------------------------------------------------------------------- scoring


def case_passes(case: Case, proba: np.ndarray) -> bool:
    """Whether ``case`` passes given ``proba``, the ``(len(case.texts), 3)`` probabilities of its texts.

    MFT: argmax label == expected. INV: every text's argmax label equals the original's.
    DIR: every variant lowers the side's probability by >= :data:`DIR_MIN_DROP`, or moves the
    label away from the side the original is predicted as. Raises ``ValueError`` on a bad shape.
    """
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (len(case.texts), len(LABELS)):
        raise ValueError(f"expected probabilities of shape {(len(case.texts), len(LABELS))}, got {proba.shape}")
    predicted = np.argmax(proba, axis=1)
    if case.kind == "MFT":
        return bool(predicted[0] == LABEL_TO_ID[str(case.expected)])
    if case.kind == "INV":
        return bool(np.all(predicted == predicted[0]))
    if case.kind == "DIR":
        side = LABEL_TO_ID[str(case.expected)]
        dropped = proba[1:, side] <= proba[0, side] - DIR_MIN_DROP
        moved_away = (predicted[0] == side) & (predicted[1:] != side)
        return bool(np.all(dropped | moved_away))
    raise ValueError(f"unknown kind {case.kind!r}")


def run_suite(model: ProbaModel, cases: Sequence[Case] | None = None, max_failures: int = 3) -> dict[str, Any]:
    """Run the behavioural suite on ``model`` (default cases: :func:`build_cases`).

    Calls ``model.predict_proba`` exactly once, on the unique texts of all cases in first-seen
    order. Returns ``{"overall": {n, passed, pass_rate, macro_pass_rate}, "by_kind": {kind:
    {n, passed, pass_rate}}, "by_type": {test_type: {kind, n, passed, pass_rate,
    original_accuracy, failures}}, "n_texts": int}``; ``failures`` holds up to ``max_failures``
    failing cases (id, texts, predicted labels, expected, probability of the expected label).
    ``original_accuracy`` (INV and DIR only, else ``None``) is the share of originals predicted as
    ``expected``. Raises ``ValueError`` if there are no cases or the probabilities have the wrong
    shape or are not finite.
    """
    cases = list(build_cases() if cases is None else cases)
    if not cases:
        raise ValueError("no behavioural cases to run")
    unique = list(dict.fromkeys(text for case in cases for text in case.texts))
    proba = np.asarray(model.predict_proba(unique), dtype=float)
    if proba.shape != (len(unique), len(LABELS)):
        raise ValueError(f"predict_proba returned shape {proba.shape}, expected {(len(unique), len(LABELS))}")
    if not np.all(np.isfinite(proba)):
        raise ValueError("predict_proba returned non-finite probabilities")
    row_of = {text: row for row, text in enumerate(unique)}

    by_type: dict[str, dict[str, Any]] = {}
    originals_right: dict[str, int] = {}
    for case in cases:
        case_proba = proba[[row_of[text] for text in case.texts]]
        entry = by_type.setdefault(case.test_type, {"kind": case.kind, "n": 0, "passed": 0, "failures": []})
        entry["n"] += 1
        predicted = [LABELS[i] for i in np.argmax(case_proba, axis=1)]
        if case.kind != "MFT" and case.expected is not None:
            originals_right[case.test_type] = originals_right.get(case.test_type, 0) + (predicted[0] == case.expected)
        if case_passes(case, case_proba):
            entry["passed"] += 1
        elif len(entry["failures"]) < max_failures:
            column = LABEL_TO_ID[case.expected] if case.expected is not None else None
            entry["failures"].append(
                {
                    "case_id": case.case_id,
                    "texts": list(case.texts),
                    "predicted": predicted,
                    "expected": case.expected,
                    "p_expected": None if column is None else [round(float(p), 4) for p in case_proba[:, column]],
                }
            )
    for test_type, entry in by_type.items():
        entry["pass_rate"] = entry["passed"] / entry["n"]
        entry["original_accuracy"] = originals_right.get(test_type, 0) / entry["n"] if entry["kind"] != "MFT" else None
    by_kind: dict[str, dict[str, Any]] = {}
    for entry in by_type.values():
        totals = by_kind.setdefault(entry["kind"], {"n": 0, "passed": 0})
        totals["n"] += entry["n"]
        totals["passed"] += entry["passed"]
    for totals in by_kind.values():
        totals["pass_rate"] = totals["passed"] / totals["n"]
    n_passed = sum(entry["passed"] for entry in by_type.values())
    return {
        "overall": {
            "n": len(cases),
            "passed": n_passed,
            "pass_rate": n_passed / len(cases),
            "macro_pass_rate": float(np.mean([entry["pass_rate"] for entry in by_type.values()])),
        },
        "by_kind": by_kind,
        "by_type": by_type,
        "n_texts": len(unique),
    }


def format_results(results: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`run_suite` results: one line per test type, then the total."""
    lines = [f"{'test type':<24} {'kind':<4} {'n':>4} {'passed':>6} {'rate':>6}"]
    for test_type, entry in results["by_type"].items():
        lines.append(
            f"{test_type:<24} {entry['kind']:<4} {entry['n']:>4} {entry['passed']:>6} {entry['pass_rate']:>6.1%}"
        )
    overall = results["overall"]
    lines.append(
        f"{'overall':<24} {'':<4} {overall['n']:>4} {overall['passed']:>6} {overall['pass_rate']:>6.1%}"
        f"  (macro {overall['macro_pass_rate']:.1%})"
    )
    return "\n".join(lines)
