import pytest
from pydantic import BaseModel, Field

from bot.args import ByteSize, Count, parse_args, positional, tokenize, usage_line
from bot.errors import UsageError


class Sample(BaseModel):
    env: str | None = positional(None, description="environment")
    vectors: Count = Field(description="how many")
    disk: ByteSize = Field(0, description="disk")
    dim: int = Field(768, le=32768)
    dry_run: bool = False
    set: list[str] = Field(default_factory=list)


def parse(text: str) -> Sample:
    result = parse_args("plan", Sample, tokenize(text))
    assert isinstance(result, Sample)
    return result


@pytest.mark.parametrize(
    ("text", "expected"),
    [("100M", 100_000_000), ("1.5B", 1_500_000_000), ("250k", 250_000), ("1_000", 1000), ("42", 42)],
)
def test_counts_accept_suffixes(text, expected):
    assert parse(f"--vectors {text}").vectors == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("512Gi", 512 * 2**30), ("100GB", 100 * 10**9), ("1.5Ti", int(1.5 * 2**40))]
)
def test_byte_sizes_accept_binary_and_decimal_suffixes(text, expected):
    assert parse(f"--vectors 1 --disk {text}").disk == expected


def test_positionals_flags_and_repeated_options():
    args = parse("prod --vectors=2M --dry-run --set a.b=1 --set c=d")
    assert (args.env, args.vectors, args.dry_run, args.set) == ("prod", 2_000_000, True, ["a.b=1", "c=d"])


def test_curly_quotes_from_slack_are_read_as_quotes():
    assert parse("--vectors 1 --set \u201cname=a b\u201d").set == ["name=a b"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("--vectors 1x", "unknown suffix"),
        ("--vector 1M", "Did you mean `--vectors`?"),
        ("--vectors 1M --dim 40000", "`--dim` Input should be less than or equal to 32768"),
        ("prod extra --vectors 1", "Unexpected argument `extra`"),
        ("--vectors", "needs a value"),
        ("prod", "`--vectors` is required"),
        ('--vectors "1', "every quote is closed"),
    ],
)
def test_bad_input_gets_a_short_message_with_the_usage(text, says):
    with pytest.raises(UsageError) as err:
        parse(text)
    shown = err.value.user_text()
    assert says in shown
    assert "Traceback" not in shown


def test_usage_line_is_generated_from_the_model():
    assert usage_line("plan", Sample) == (
        "/milvus plan [env] --vectors <vectors> [--disk <disk>] [--dim <dim>] [--dry-run] [--set <set>]"
    )
