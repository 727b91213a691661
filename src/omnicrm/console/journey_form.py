"""The new-journey form of the console, and a journey said in words.

A shop owner builds a journey without JSON: a trigger (first order or any order, optionally narrowed to a
promotion, a channel and a source), "exit on purchase", and up to ``MAX_STEPS`` steps, each with its day, its
"only if no order since entry" condition, a channel, the holdout in percent and the message in Chinese and
optionally English (a WeChat subscription message's parameters as ``name=value`` lines). The form's fields are
named as ``omnicrm.campaigns.journeys`` names the places of its problems (``steps[1].channel``,
``steps[0].content.zh.body``), so each problem it reports lands beside its field. A step left blank is skipped;
the steps after it move up in the journey, and ``FormSteps`` maps the journey's step numbers back to the form's.

``words`` says a stored journey the way a merchant would: "首单在双11 → 3天后 微信关怀 → 14天后（期间未复购）
短信券 → 购买即退出".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omnicrm.campaigns.content import compile_content
from omnicrm.campaigns.journeys import ORDER_CHANNELS, PROMOTIONS, TRIGGERS, Journey
from omnicrm.errors import InputError, Problem

__all__ = [
    "LANGS", "MAX_STEPS", "STEP_FIELDS", "FormSteps", "defaults", "field_names", "place", "read", "to_spec", "words",
]  # fmt: skip

MAX_STEPS = 3
LANGS = ("zh", "en")
TOP_FIELDS = ("name", "trigger.type", "trigger.promotion", "trigger.channel", "trigger.source", "exit.on")
STEP_FIELDS = (
    "name", "after_days", "condition", "channel", "consent_channel", "holdout_share",
    *(f"content.{lang}.{part}" for lang in LANGS for part in ("subject", "body", "template_id", "params")),
)  # fmt: skip
# what a step has to have typed to count as used (a channel and a holdout are always filled in)
_TYPED = ("name", "after_days", *(f for f in STEP_FIELDS if f.startswith("content.")))
_STEP = re.compile(r"^steps\[(\d+)\]")
Translate = Callable[..., str]


def field_names() -> tuple[str, ...]:
    """Every field of the form, steps' fields as ``steps[i].<field>``."""
    return (*TOP_FIELDS, *(f"steps[{i}].{f}" for i in range(MAX_STEPS) for f in STEP_FIELDS))


def defaults(channel: str) -> dict[str, str]:
    """An empty form: first order, exit on purchase, each step on ``channel`` with a 10 % holdout."""
    values = dict.fromkeys(field_names(), "")
    values.update({"trigger.type": "first_order", "exit.on": "purchase"})
    for i in range(MAX_STEPS):
        values.update({f"steps[{i}].channel": channel, f"steps[{i}].holdout_share": "10"})
    return values


def read(form: Mapping[str, Any]) -> dict[str, str]:
    """The typed values, every field present (an unticked checkbox is "")."""
    return {f: str(form.get(f) or "") for f in field_names()}


@dataclass(frozen=True)
class FormSteps:
    """Which of the form's step blocks make the journey's steps, in order (``used[j]`` = form block of step j)."""

    used: tuple[int, ...]

    def form_field(self, field: str) -> str:
        """A problem's place in the journey (``steps[1].channel``) as the form's field (``steps[2].channel``)."""
        found = _STEP.match(field)
        if found is None or int(found.group(1)) >= len(self.used):
            return field
        return f"steps[{self.used[int(found.group(1))]}]" + field[found.end() :]


def _used(values: Mapping[str, str]) -> FormSteps:
    typed = [i for i in range(MAX_STEPS) if any(values[f"steps[{i}].{f}"].strip() for f in _TYPED)]
    return FormSteps(tuple(typed) or (0,))


def _params(text: str, where: str, problems: list[Problem], t: Translate) -> dict[str, str]:
    """``name=value`` lines as a dict; a line without ``=`` or a name given twice is a problem of its line."""
    params: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, eq, value = line.partition("=")
        if not eq or not name.strip():
            problems.append(Problem(t("journeys.error.params"), field=where, line=n))
        elif name.strip() in params:
            problems.append(Problem(t("journeys.error.params_twice", name=name.strip()), field=where, line=n))
        else:
            params[name.strip()] = value.strip()
    return params


def _content(values: Mapping[str, str], at: str, problems: list[Problem], t: Translate) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for lang in LANGS:
        part = {key: values[f"{at}content.{lang}.{key}"] for key in ("subject", "body", "template_id", "params")}
        if lang != "zh" and not any(v.strip() for v in part.values()):
            continue
        content[lang] = {
            "subject": part["subject"], "body": part["body"], "template_id": part["template_id"].strip() or None,
            "params": _params(part["params"], f"{at}content.{lang}.params", problems, t),
        }  # fmt: skip
    return content


def _number(values: Mapping[str, str], field: str, low: float, high: float, problems: list[Problem], message: str,
            cast: Callable[[str], float]) -> Any:  # fmt: skip
    try:
        value = cast(values[field].strip())
        if math.isfinite(value) and low <= value <= high:
            return value
    except ValueError:
        pass
    problems.append(Problem(message, field=field))
    return None


def to_spec(values: Mapping[str, str], offered: set[str], t: Translate) -> tuple[dict[str, Any], FormSteps]:
    """The journey the form describes, with form steps mapped to journey steps. Raises InputError (fields named as
    the form names them) for what a person types differently from the API — days and holdout as numbers, the
    holdout in percent, parameters as lines, a channel that may not market — and, in the same round, for the
    messages' templates."""
    problems: list[Problem] = []
    used = _used(values)
    steps = []
    for i in used.used:
        at = f"steps[{i}]."
        days = _number(values, at + "after_days", 0, 365, problems, t("journeys.error.after_days"), int)
        share = _number(values, at + "holdout_share", 0, 50, problems, t("campaigns.error.holdout_share"), float)
        if values[at + "channel"] not in offered:
            problems.append(Problem(t("journeys.error.channel"), field=at + "channel"))
        content = _content(values, at, problems, t)
        steps.append({
            "name": values[at + "name"].strip() or None, "after_days": days,
            "condition": values[at + "condition"] or None, "channel": values[at + "channel"],
            "consent_channel": values[at + "consent_channel"] or None, "content": content,
            "holdout_share": None if share is None else round(share / 100, 6),
        })  # fmt: skip
    if problems:  # the templates as well, so that one round shows every problem
        for i, step in zip(used.used, steps, strict=True):
            try:
                compile_content(step["content"])
            except InputError as exc:
                problems += [Problem(p.reason, field=f"steps[{i}].{p.field}", line=p.line) for p in exc.problems]
        raise InputError(t("journeys.error.form"), problems)
    trigger = {key: values[f"trigger.{key}"].strip() or None for key in ("type", "promotion", "channel", "source")}
    spec = {"name": values["name"].strip(), "trigger": trigger,
            "exit": {"on": values["exit.on"]} if values["exit.on"] else None, "steps": steps}  # fmt: skip
    return spec, used


_ALIASES = (  # a place with no field of its own, by the field that shows it
    (re.compile(r"^(steps\[\d+\])\.content\.(zh|en)$"), r"\1.content.\2.body"),
    (re.compile(r"^(steps\[\d+\])\.content$"), r"\1.content.zh.body"),
    (re.compile(r"^(steps\[\d+\])$"), r"\1.after_days"),
    (re.compile(r"^trigger$"), "trigger.type"),
    (re.compile(r"^exit$"), "exit.on"),
)


def place(problems: list[Problem], used: FormSteps, t: Translate) -> tuple[dict[str, list[str]], list[str]]:
    """Each problem beside its form field (the longest field its place starts with), the rest for the top."""
    names = sorted(field_names(), key=len, reverse=True)
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        where = used.form_field(problem.field or "")
        for pattern, alias in _ALIASES:
            where = pattern.sub(alias, where)
        field = next((n for n in names if where == n or where.startswith((n + ".", n + "["))), None)
        reason = problem.reason if problem.line is None else f"{t('campaigns.line', n=problem.line)}: {problem.reason}"
        if field is None:
            general.append(f"{where}: {reason}" if where else reason)
        else:
            errors.setdefault(field, []).append(reason)
    return errors, general


# --- a journey in words ---------------------------------------------------------------------------------------


def trigger_words(t: Translate, trigger: Mapping[str, Any]) -> str:
    """The trigger in words: "首单在双11" / "First order in Double 11" (with the channel and source, if narrowed)."""
    kind = trigger.get("type") if trigger.get("type") in TRIGGERS else "order"
    text = t(f"journeys.words.{kind}")
    if trigger.get("promotion") in PROMOTIONS:
        text += t("journeys.words.promotion", promotion=t(f"journeys.promotion.{trigger['promotion']}"))
    if trigger.get("channel") in ORDER_CHANNELS:
        text += t("journeys.words.channel", channel=t(f"journeys.order_channel.{trigger['channel']}"))
    if trigger.get("source"):
        text += t("journeys.words.source", source=trigger["source"])
    return text


def step_label(t: Translate, journey: Journey, index: int, campaign: Mapping[str, Any] | None,
               kinds: Mapping[str, str]) -> str:  # fmt: skip
    """The step's own name if it was given one, else its channel's kind ("短信")."""
    if campaign is None:
        return t("journeys.step_n", n=index + 1)
    if campaign["name"] != f"{journey.name} · step {index + 1}"[:128]:
        return str(campaign["name"])
    kind = kinds.get(campaign["channel"])
    return t(f"campaigns.kind.{kind}") if kind else str(campaign["channel"])


def words(t: Translate, journey: Journey, campaigns: Mapping[int, Mapping[str, Any]], kinds: Mapping[str, str]
          ) -> list[str]:  # fmt: skip
    """The journey as its parts in words: trigger, each step ("14天后（期间未复购）短信券"), exit."""
    parts = [trigger_words(t, journey.trigger)]
    for i, step in enumerate(journey.steps):
        label = step_label(t, journey, i, campaigns.get(step.campaign_id), kinds)
        key = "journeys.words.step_if" if step.condition == "no_order_since_entry" else "journeys.words.step"
        parts.append(t(key, days=step.after_days, label=label))
    if journey.exit is not None:
        parts.append(t("journeys.words.exit"))
    return parts
