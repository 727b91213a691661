"""Campaign content: the message templates of a campaign, per language, checked once and rendered per recipient.

Marketers write the templates, so they are untrusted input: Jinja2 in ``ImmutableSandboxedEnvironment``
with ``StrictUndefined``, and on top of the sandbox a template may only use the names of
``ALLOWED_NAMES`` (recipient fields: ``customer_id`` and the portrait tags of ``RECIPIENT_TAGS``;
``coupon_code``, ``unsubscribe_url``, ``shop_name``; ``link(n)``), output, ``{% if %}``, constants,
comparisons, arithmetic, indexing, and the ``FILTERS`` and ``TESTS``. No loops, macros, assignments,
attribute access or method calls: a template cannot reach a Python object, and its rendering time and
output grow with its size only. Every problem is reported at once, named by its place (``content.en.body``).

Email HTML is autoescaped (a value holding ``<script>`` arrives as text); the text parts (subject,
body, provider parameters) are not, as SMS and WeChat show them as they are. ``link(n)`` is the n-th
distinct URL of the content as a per-recipient tracked link (``omnicrm.campaigns.links`` rewrites
literal URLs into it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar, Literal

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from omnicrm.errors import InputError, Problem

__all__ = [
    "ALLOWED_NAMES", "FILTERS", "LANGUAGES", "MESSAGE_NAMES", "RECIPIENT_FIELDS", "RECIPIENT_TAGS", "TESTS",
    "CompiledContent", "CompiledLanguage", "Content", "LanguageContent", "Part", "RenderError", "Rendered",
    "compile_content", "render",
]  # fmt: skip

LANGUAGES = ("zh", "en")

# Portrait tags (docs/tags.md) that make sense in a message; the sender fetches only those a content uses.
RECIPIENT_TAGS = (
    "gender", "city", "province", "birthday_month", "is_member", "member_tenure_days", "lifecycle_stage",
    "rfm_segment", "preferred_category", "preferred_brand", "preferred_size", "preferred_shoe_size",
    "preferred_colour", "price_band", "top_interest",
)  # fmt: skip
RECIPIENT_FIELDS = ("customer_id", *RECIPIENT_TAGS)
# Values the sender supplies per message rather than per customer portrait.
MESSAGE_NAMES = ("coupon_code", "unsubscribe_url", "shop_name")
ALLOWED_NAMES = frozenset((*RECIPIENT_FIELDS, *MESSAGE_NAMES, "link"))

# Filters and tests that cannot amplify output or reach objects (no format, replace, join, center, attr, map ...).
FILTERS = frozenset((
    "abs", "capitalize", "count", "d", "default", "e", "escape", "first", "float", "int", "last", "length", "lower",
    "round", "string", "striptags", "title", "trim", "truncate", "upper", "wordcount",
))  # fmt: skip
TESTS = frozenset((
    "==", "!=", "<", "<=", ">", ">=", "boolean", "defined", "divisibleby", "eq", "even", "false", "float", "ge", "gt",
    "in", "integer", "le", "lower", "lt", "ne", "none", "number", "odd", "string", "true", "undefined", "upper",
))  # fmt: skip

_MAX_TEXT = 20_000
_MAX_HTML = 200_000
_MAX_SEQUENCE = 10_000  # longest string or list a '*' may build
_MAX_LINKS = 100
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]

PartKind = Literal["subject", "body", "html", "param"]


# --- the content model -------------------------------------------------------------------------


class LanguageContent(BaseModel):
    """The templates of one language."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field("", max_length=_MAX_TEXT, description="Email subject, push title.")
    body: str = Field("", max_length=_MAX_TEXT, description="Text: SMS, WeChat, WeCom, push text, email text part.")
    html: str | None = Field(None, max_length=_MAX_HTML, description="Email HTML (values are autoescaped).")
    params: dict[ParamName, Annotated[str, Field(max_length=_MAX_TEXT)]] = Field(
        default_factory=dict,
        max_length=50,
        description="Provider template parameters by name, each a template (WeChat subscription messages, SMS).",
    )
    template_id: str | None = Field(
        None, max_length=128, description="Provider template id: WeChat subscription template, SMS template code."
    )

    @model_validator(mode="after")
    def _says_something(self) -> LanguageContent:
        if not (self.body.strip() or (self.html or "").strip() or self.template_id):
            raise ValueError("give a body, an html or a template_id")
        return self


class Content(BaseModel):
    """A campaign's content: Chinese (required) and English (optional) templates, and the coupon it issues."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: LanguageContent
    en: LanguageContent | None = None
    coupon_template: str | None = Field(None, max_length=128, description="Coupon template issued with the message.")
    coupon_channel: str | None = Field(
        None, max_length=64, description="The configured coupon channel that issues it (its id is `coupon_code`)."
    )

    @model_validator(mode="after")
    def _coupon_complete(self) -> Content:
        if (self.coupon_template is None) != (self.coupon_channel is None):
            raise ValueError("give coupon_template and coupon_channel together")
        return self


# --- the sandbox -------------------------------------------------------------------------------


class _MessageEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with '*', '**' and '%' bounded: no huge strings, numbers or %-formatting."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > _MAX_SEQUENCE:
                    raise SecurityError(f"'*' would build a sequence longer than {_MAX_SEQUENCE}")
        elif operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            if abs(left) > 1 and right * math.log10(abs(left)) > 100:
                raise SecurityError("'**' would build a number over 10**100")
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("'%' string formatting is not available in message templates")
        return super().call_binop(context, operator, left, right)


def _finalize(value: Any) -> Any:
    """Whole floats print without '.0' (tags such as birthday_month come back from Parquet as floats)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _environment(autoescape: bool) -> _MessageEnvironment:
    env = _MessageEnvironment(
        undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=True, finalize=_finalize
    )
    env.globals.clear()  # no range, lipsum, cycler, joiner, namespace, dict
    env.filters = {name: f for name, f in env.filters.items() if name in FILTERS}
    env.tests = {name: t for name, t in env.tests.items() if name in TESTS}
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)

_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.Name, nodes.Const, nodes.Filter,
    nodes.Test, nodes.Call, nodes.CondExpr, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
    nodes.Compare, nodes.Operand, nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv,
    nodes.Mod, nodes.Pow, nodes.List, nodes.Tuple, nodes.Getitem, nodes.Slice,
)  # fmt: skip
_REFUSED_WORDS = {
    "For": "{% for %} loops", "Macro": "macros", "CallBlock": "{% call %} blocks", "Assign": "{% set %}",
    "AssignBlock": "{% set %}", "Include": "{% include %}", "Import": "{% import %}", "FromImport": "{% import %}",
    "Extends": "{% extends %}", "Block": "{% block %}", "FilterBlock": "{% filter %} blocks", "With": "{% with %}",
    "Scope": "{% with %}", "Dict": "dictionaries",
}  # fmt: skip


def _check(node: nodes.Node, where: str, problems: list[Problem]) -> None:
    """Append a problem for each construct of ``node`` outside the allowed language (see the module doc)."""
    reason, descend = _judge(node)
    if reason is not None:
        problems.append(Problem(reason, where, line=getattr(node, "lineno", None)))
    if descend:
        for child in node.iter_child_nodes():
            _check(child, where, problems)


def _judge(node: nodes.Node) -> tuple[str | None, bool]:
    """Why ``node`` is refused (None: it is not), and whether its children are to be checked."""
    kind = type(node).__name__
    if isinstance(node, nodes.Getattr):
        return f"attribute access ('.{node.attr}') is not allowed in message templates", False
    if not isinstance(node, _ALLOWED_NODES):
        return f"not allowed in message templates: {_REFUSED_WORDS.get(kind, kind)}", False
    if isinstance(node, nodes.Name):
        if node.name == "link":
            return "'link' is used as link(n), n the number of the link", False
        if node.name not in ALLOWED_NAMES or node.ctx != "load":
            allowed = ", ".join(sorted(ALLOWED_NAMES - {"link"}))
            return f"unknown field '{node.name}'; the fields are: {allowed}, link(n)", False
        return None, False
    if isinstance(node, nodes.Call):
        return (None if _link_number(node) else f"the only call is link(n), n a number from 1 to {_MAX_LINKS}"), False
    if isinstance(node, nodes.Filter) and node.name not in FILTERS:
        return f"filter '{node.name}' is not available; use one of {', '.join(sorted(FILTERS))}", True
    if isinstance(node, nodes.Test) and node.name not in TESTS:
        return f"test '{node.name}' is not available; use one of {', '.join(sorted(TESTS))}", True
    if isinstance(node, nodes.Getitem) and not (
        isinstance(node.arg, nodes.Slice) or (isinstance(node.arg, nodes.Const) and type(node.arg.value) is int)
    ):
        return "indexing is by position only, e.g. city[0]", False
    return None, True


def _link_number(call: nodes.Call) -> int | None:
    """n of a ``link(n)`` call with a constant whole n in 1..100, else None."""
    if not (isinstance(call.node, nodes.Name) and call.node.name == "link"):
        return None
    if call.kwargs or call.dyn_args or call.dyn_kwargs or len(call.args) != 1:
        return None
    arg = call.args[0]
    if isinstance(arg, nodes.Const) and type(arg.value) is int and 1 <= arg.value <= _MAX_LINKS:
        return arg.value
    return None


# --- compiled content ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One template, parsed and compiled: ``where`` names it (``content.zh.params.thing3``)."""

    where: str
    kind: PartKind
    key: str  # subject, body, html, or the parameter name
    source: str
    template: Template
    names: frozenset[str]
    links: frozenset[int]  # n of the link(n) calls

    @property
    def environment(self) -> ImmutableSandboxedEnvironment:
        """The sandbox this part compiles in (HTML autoescapes)."""
        return _HTML_ENV if self.kind == "html" else _TEXT_ENV

    def recompiled(self, ast: nodes.Template) -> Part:
        """This part with a rewritten syntax tree (link tracking), checked again."""
        return _build(self.where, self.kind, self.key, self.source, ast)


@dataclass(frozen=True)
class CompiledLanguage:
    """The parts of one language, the names they use, and the provider template id."""

    language: str
    parts: tuple[Part, ...]
    template_id: str | None

    @property
    def names(self) -> frozenset[str]:
        return frozenset().union(*(p.names for p in self.parts))


@dataclass(frozen=True)
class CompiledContent:
    """Content with every template parsed once; ``links[n - 1]`` is the destination of ``link(n)``."""

    content: Content
    languages: Mapping[str, CompiledLanguage]
    links: tuple[str, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        """Every name the templates use, over all languages."""
        return frozenset().union(*(lang.names for lang in self.languages.values()))

    @property
    def fields(self) -> tuple[str, ...]:
        """The recipient fields the templates use (customer_id and tags), in catalogue order."""
        names = self.names
        return tuple(f for f in RECIPIENT_FIELDS if f in names)

    @property
    def tags(self) -> tuple[str, ...]:
        """The portrait tags the templates use: what the sender fetches per recipient."""
        return tuple(f for f in self.fields if f != "customer_id")

    @property
    def coupon_template(self) -> str | None:
        return self.content.coupon_template

    def parts(self) -> Iterator[Part]:
        for lang in self.languages.values():
            yield from lang.parts

    def with_parts(self, parts: Mapping[str, Part], links: tuple[str, ...]) -> CompiledContent:
        """A copy with some parts replaced (by ``where``) and the link destinations set."""
        languages = {
            code: replace(lang, parts=tuple(parts.get(p.where, p) for p in lang.parts))
            for code, lang in self.languages.items()
        }
        return replace(self, languages=languages, links=links)


def _unusable(problems: list[Problem]) -> InputError:
    return InputError("the campaign content cannot be used", problems)


def _build(where: str, kind: PartKind, key: str, source: str, ast: nodes.Template) -> Part:
    problems: list[Problem] = []
    _check(ast, where, problems)
    if problems:
        raise _unusable(problems)
    env = _HTML_ENV if kind == "html" else _TEXT_ENV
    try:
        template = env.from_string(ast)
    except TemplateError as exc:
        raise _unusable([Problem(str(exc), where)]) from None
    names = frozenset(n.name for n in ast.find_all(nodes.Name))
    links = frozenset(n for call in ast.find_all(nodes.Call) if (n := _link_number(call)) is not None)
    return Part(where, kind, key, source, template, names, links)


def _compile_part(where: str, kind: PartKind, key: str, source: str) -> Part:
    env = _HTML_ENV if kind == "html" else _TEXT_ENV
    try:
        return _build(where, kind, key, source, env.parse(source))
    except TemplateSyntaxError as exc:
        raise _unusable([Problem(f"the template does not parse: {exc.message}", where, line=exc.lineno)]) from None
    except RecursionError:
        raise _unusable([Problem("the template nests too deeply", where)]) from None


def _sources(lang: LanguageContent) -> Iterator[tuple[PartKind, str, str]]:
    yield "subject", "subject", lang.subject
    yield "body", "body", lang.body
    for name, value in lang.params.items():
        yield "param", name, value
    if lang.html is not None:
        yield "html", "html", lang.html


def _validated(content: Content | Mapping[str, Any]) -> Content:
    if isinstance(content, Content):
        return content
    try:
        return Content.model_validate(content)
    except ValidationError as exc:
        problems = [Problem(e["msg"], ".".join(["content", *(str(p) for p in e["loc"])])) for e in exc.errors()]
        raise _unusable(problems) from None


def compile_content(content: Content | Mapping[str, Any]) -> CompiledContent:
    """Parse and check every template of ``content`` (a model or its JSON form) once.

    Raises InputError listing every problem: a template that does not parse, an unknown field, a
    construct outside the sandboxed message language; each names its place (``content.en.body``).
    """
    content = _validated(content)
    problems: list[Problem] = []
    languages: dict[str, CompiledLanguage] = {}
    for code in LANGUAGES:
        lang: LanguageContent | None = getattr(content, code)
        if lang is None:
            continue
        parts: list[Part] = []
        for kind, key, source in _sources(lang):
            where = f"content.{code}.{'params.' if kind == 'param' else ''}{key}"
            try:
                parts.append(_compile_part(where, kind, key, source))
            except InputError as exc:
                problems.extend(exc.problems)
        languages[code] = CompiledLanguage(code, tuple(parts), lang.template_id)
    if problems:
        raise _unusable(problems)
    return CompiledContent(content, languages)


# --- rendering -----------------------------------------------------------------------------------


@dataclass
class RenderError(InputError):
    """One recipient's message cannot be rendered (a missing value, a failing template): a permanent
    failure for that recipient only. ``field_name`` is the missing field, or the part that failed."""

    customer_id: object = None
    field_name: str | None = None
    code: ClassVar[str] = "render_error"


@dataclass(frozen=True)
class Rendered:
    """One recipient's message: the language used (after fallback) and the rendered parts."""

    language: str
    subject: str
    body: str
    html: str | None
    params: dict[str, str] = field(default_factory=dict)
    template_id: str | None = None


def render(
    compiled: CompiledContent,
    language: str,
    fields: Mapping[str, object],
    links: Callable[[int], str] | None = None,
) -> Rendered:
    """The message of one recipient in ``language`` (falling back to zh when it has no templates).

    ``fields`` holds ``customer_id``, the recipient's tags and the message values (coupon_code,
    unsubscribe_url, shop_name); ``links(n)`` gives the recipient's tracked URL of link n. A used
    field that is absent or None raises RenderError naming the customer and the field.
    """
    lang = compiled.languages.get(language) or compiled.languages["zh"]
    customer = fields.get("customer_id")
    values: dict[str, object] = {}
    for name in sorted(lang.names - {"link"}):
        value = fields.get(name)
        if value is None:
            used_in = ", ".join(p.where for p in lang.parts if name in p.names)
            raise RenderError(
                f"customer {customer}: field '{name}' has no value (used by {used_in})",
                [Problem(f"no value for customer {customer}", name)],
                customer_id=customer,
                field_name=name,
            )
        values[name] = value
    needed = max((n for p in lang.parts for n in p.links), default=0)
    if needed and (links is None or needed > len(compiled.links)):
        have = "no link maker" if links is None else f"{len(compiled.links)} tracked links"
        raise RenderError(f"customer {customer}: the content uses link({needed}) and has {have} (see track_links)")
    if needed:
        values["link"] = links
    out: dict[str, str] = {}
    params: dict[str, str] = {}
    for part in lang.parts:
        text = _render_part(part, values, customer)
        if part.kind == "param":
            params[part.key] = text
        else:
            out[part.kind] = text
    return Rendered(lang.language, out["subject"], out["body"], out.get("html"), params, lang.template_id)


def _render_part(part: Part, values: Mapping[str, object], customer: object) -> str:
    try:
        return part.template.render(values)
    except RenderError:
        raise
    except SecurityError as exc:
        raise _part_failed(part, customer, f"refused by the template sandbox: {exc}") from exc
    except Exception as exc:  # the template is user input: any failure is this recipient's, not the sender's
        raise _part_failed(part, customer, f"the template failed: {type(exc).__name__}: {exc}") from exc


def _part_failed(part: Part, customer: object, reason: str) -> RenderError:
    return RenderError(
        f"customer {customer}: {part.where}: {reason}",
        [Problem(reason, part.where)],
        customer_id=customer,
        field_name=part.where,
    )
