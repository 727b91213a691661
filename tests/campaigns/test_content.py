"""Campaign content: compiling and rendering zh/en templates in the sandbox, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2.sandbox import SecurityError

from omnicrm.campaigns.content import (
    RECIPIENT_FIELDS,
    RECIPIENT_TAGS,
    Content,
    RenderError,
    compile_content,
    render,
)
from omnicrm.errors import InputError
from omnicrm.portrait.tags.catalogue import BUILTIN

CONTENT: dict[str, Any] = {
    "zh": {
        "subject": "{{ shop_name }}：{{ city }}门店上新",
        "body": "亲爱的会员，您常买的{{ preferred_category }}到货了，券码{{ coupon_code }}。退订 {{ unsubscribe_url }}",
        "html": "<p>{{ city }}：{{ preferred_category }}</p><a href='{{ unsubscribe_url }}'>退订</a>",
    },
    "en": {
        "subject": "{{ shop_name }}: new in {{ city }}",
        "body": "New {{ preferred_category }} in stock. Code {{ coupon_code }}. Stop: {{ unsubscribe_url }}",
    },
    "coupon_template": "CT-2026-11",
    "coupon_channel": "coupons",
}
FIELDS: dict[str, object] = {
    "customer_id": 42,
    "city": "杭州",
    "preferred_category": "鞋",
    "coupon_code": "C0DE42",
    "unsubscribe_url": "https://crm.shop.cn/u/abc",
    "shop_name": "小店",
}


def _problems(exc: pytest.ExceptionInfo[InputError]) -> list[tuple[str | None, str]]:
    return [(p.field, p.reason) for p in exc.value.problems]


def test_renders_each_language() -> None:
    compiled = compile_content(CONTENT)
    zh = render(compiled, "zh", FIELDS)
    assert zh.language == "zh"
    assert zh.subject == "小店：杭州门店上新"
    assert zh.body == "亲爱的会员，您常买的鞋到货了，券码C0DE42。退订 https://crm.shop.cn/u/abc"
    assert zh.html == "<p>杭州：鞋</p><a href='https://crm.shop.cn/u/abc'>退订</a>"
    en = render(compiled, "en", FIELDS)
    assert (en.language, en.subject, en.html) == ("en", "小店: new in 杭州", None)
    assert en.body.startswith("New 鞋 in stock. Code C0DE42.")
    assert compiled.coupon_template == "CT-2026-11"


def test_falls_back_to_zh_without_english() -> None:
    compiled = compile_content({"zh": CONTENT["zh"]})
    for language in ("en", "ja", "zh"):
        rendered = render(compiled, language, FIELDS)
        assert rendered.language == "zh"
        assert rendered.subject == "小店：杭州门店上新"


def test_fields_lists_the_recipient_fields_used() -> None:
    compiled = compile_content(
        {
            "zh": {"body": "{{ customer_id }} {{ coupon_code }}"},
            "en": {"body": "{% if is_member %}{{ city }}{% endif %}"},
        }
    )
    assert compiled.fields == ("customer_id", "city", "is_member")
    assert compiled.tags == ("city", "is_member")
    assert {"coupon_code", "city", "is_member", "customer_id"} == compiled.names


def test_recipient_tags_are_real_portrait_tags() -> None:
    catalogue = {t.id for t in BUILTIN}
    assert set(RECIPIENT_TAGS) <= catalogue
    assert RECIPIENT_FIELDS[0] == "customer_id"


def test_provider_params_and_template_id() -> None:
    compiled = compile_content(
        {
            "zh": {
                "template_id": "SMS_1234",
                "params": {"thing1": "{{ preferred_category }}", "code": "{{ coupon_code }}"},
            }
        }
    )
    rendered = render(compiled, "zh", FIELDS)
    assert rendered.params == {"thing1": "鞋", "code": "C0DE42"}
    assert rendered.template_id == "SMS_1234"
    assert rendered.body == ""


def test_unknown_field_names_language_part_and_field() -> None:
    bad = {"zh": {"body": "{{ city }}", "params": {"thing2": "{{ points }}"}}, "en": {"body": "Hi {{ nickname }}"}}
    with pytest.raises(InputError) as exc:
        compile_content(bad)
    problems = _problems(exc)
    assert [f for f, _ in problems] == ["content.zh.params.thing2", "content.en.body"]
    assert "unknown field 'points'" in problems[0][1]
    assert "unknown field 'nickname'" in problems[1][1]
    assert "content.en.body" in str(exc.value) and "nickname" in str(exc.value)


def test_template_that_does_not_parse_is_refused_with_its_line() -> None:
    with pytest.raises(InputError) as exc:
        compile_content({"zh": {"body": "ok"}, "en": {"body": "line one\n{{ city ", "html": "{% if city %}x"}})
    problems = exc.value.problems
    assert [(p.field, p.line) for p in problems] == [("content.en.body", 2), ("content.en.html", 1)]
    assert all("does not parse" in p.reason for p in problems)


def test_invalid_shape_names_the_field() -> None:
    with pytest.raises(InputError) as exc:
        compile_content({"en": {"body": "x"}, "zh": {"subject": "only a subject"}, "colour": "red"})
    fields = {p.field for p in exc.value.problems}
    assert {"content.zh", "content.colour"} <= fields
    with pytest.raises(InputError) as exc:
        compile_content({"zh": {"body": "x", "params": {"bad name": "x"}}})
    assert any((p.field or "").startswith("content.zh.params") for p in exc.value.problems)


def test_missing_recipient_value_names_customer_and_field() -> None:
    compiled = compile_content(CONTENT)
    for missing in ({k: v for k, v in FIELDS.items() if k != "city"}, {**FIELDS, "city": None}):
        with pytest.raises(RenderError) as exc:
            render(compiled, "zh", missing)
        assert exc.value.customer_id == 42
        assert exc.value.field_name == "city"
        assert "customer 42" in str(exc.value) and "'city'" in str(exc.value)
        assert "content.zh.subject" in str(exc.value)


def test_only_the_fields_of_the_rendered_language_are_needed() -> None:
    compiled = compile_content({"zh": {"body": "您好"}, "en": {"body": "Hello from {{ city }}"}})
    assert render(compiled, "zh", {"customer_id": 7}).body == "您好"
    with pytest.raises(RenderError, match="customer 7"):
        render(compiled, "en", {"customer_id": 7})


def test_html_is_autoescaped_and_text_is_not() -> None:
    compiled = compile_content({"zh": {"body": "{{ city }}", "html": "<b>{{ city }}</b>"}})
    rendered = render(compiled, "zh", {**FIELDS, "city": "<script>alert(1)</script>"})
    assert rendered.html == "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"
    assert rendered.body == "<script>alert(1)</script>"


def test_whole_floats_print_as_integers() -> None:
    compiled = compile_content({"zh": {"body": "{{ birthday_month }}月 {{ member_tenure_days }}"}})
    assert (
        render(compiled, "zh", {"customer_id": 1, "birthday_month": 5.0, "member_tenure_days": 2.5}).body == "5月 2.5"
    )


HOSTILE = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ city.__init__.__globals__ }}",
    "{{ city|attr('__class__') }}",
    "{{ city['__class__'] }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ range(10) }}",
    "{{ lipsum() }}",
    "{{ city.upper() }}",
    "{{ city.center(1000000000) }}",
    "{{ '%0999999999d'|format(1) }}",
    "{{ city|replace('', 'xx') }}",
    "{% for x in city %}{{ x }}{% endfor %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% set x = city ~ city %}{{ x }}",
    "{% include 'other.html' %}",
    "{% extends 'base.html' %}",
    "{{ link }}",
    "{{ link(city) }}",
    "{{ {'a': 1} }}",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_sandbox_escapes_are_refused_at_compile(template: str) -> None:
    with pytest.raises(InputError) as exc:
        compile_content({"zh": {"body": "ok"}, "en": {"html": template}})
    assert {p.field for p in exc.value.problems} == {"content.en.html"}


@pytest.mark.parametrize("template", ["{{ 'ab' * 100000 }}", "{{ 'x%sx' % city }}", "{{ 10 ** 1000 }}"])
def test_amplification_is_refused_by_the_sandbox_at_render(template: str) -> None:
    compiled = compile_content({"zh": {"body": template}})
    with pytest.raises(RenderError) as exc:
        render(compiled, "zh", FIELDS)
    assert isinstance(exc.value.__cause__, SecurityError)
    assert "sandbox" in str(exc.value) and "customer 42" in str(exc.value)


def test_the_sandbox_itself_refuses_attribute_escapes() -> None:
    """Even past the compile-time check, the environment is the immutable sandbox."""
    part = next(compile_content({"zh": {"body": "x", "html": "y"}}).parts())
    for source in ("{{ ''.__class__ }}", "{{ [].append(1) }}", "{{ f.__globals__ }}"):
        with pytest.raises(SecurityError):
            part.environment.from_string(source).render(f=test_the_sandbox_itself_refuses_attribute_escapes)


def test_content_model_round_trips_as_json() -> None:
    content = Content.model_validate(CONTENT)
    again = Content.model_validate_json(content.model_dump_json())
    assert again == content
    assert compile_content(again).fields == ("city", "preferred_category")
