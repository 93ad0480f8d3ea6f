"""What API answers cost, so a run can report its spend and stop at a budget.

The built-in table is a convenience, not a source of truth: prices change, and an
OpenAI-compatible server may bill differently or not at all. A TOML file (``--iqa-prices``)
overrides or extends it::

    # USD per 1M tokens
    [models."gpt-4o"]
    input = 2.5
    output = 10.0

A model the table does not know costs 0.0 and carries a note saying its price is unknown, so a
report never presents an unpriced run as a free one.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from iqa_eval.types import Usage

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class PricesError(ValueError):
    """A price file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Price:
    """USD per one million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, usage: Usage) -> float:
        tokens = usage.prompt_tokens * self.input_per_mtok + usage.completion_tokens * self.output_per_mtok
        return tokens / 1e6


# Approximate list prices of OpenAI's vision models, as of 2025-06 (standard tier, no caching
# or batch discounts). Check the provider's price page and override with --iqa-prices.
PRICES_AS_OF = "2025-06"
DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "gpt-4o": Price(2.50, 10.00),
        "gpt-4o-mini": Price(0.15, 0.60),
        "gpt-4.1": Price(2.00, 8.00),
        "gpt-4.1-mini": Price(0.40, 1.60),
        "gpt-4-turbo": Price(10.00, 30.00),
    }
)

# Dated snapshots ("gpt-4o-2024-08-06") are billed like their family name.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price] = field(default_factory=lambda: DEFAULT_PRICES)
    source: str = f"built-in table (approximate, as of {PRICES_AS_OF})"

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        """The built-in table overlaid with the models of a TOML price file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PricesError(f"{path}: price file not found") from None
        except (OSError, UnicodeDecodeError) as err:
            raise PricesError(f"{path}: cannot read the price file: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise PricesError(f"{path}: not valid TOML: {err}") from None
        unknown = set(data) - {"models"}
        models = data.get("models")
        if unknown or not isinstance(models, dict):
            raise PricesError(
                f'{path}: expected only [models."<name>"] tables with input and output USD per 1M tokens'
                + (f"; unknown key(s) {sorted(unknown)}" if unknown else "")
            )
        prices = dict(DEFAULT_PRICES)
        for name, entry in models.items():
            prices[name] = _price(path, name, entry)
        return cls(MappingProxyType(prices), f"{path} over the built-in table (as of {PRICES_AS_OF})")

    def lookup(self, model: str) -> Price | None:
        price = self.prices.get(model)
        if price is None:
            price = self.prices.get(_SNAPSHOT.sub("", model))
        return price

    def cost(self, model: str, usage: Usage) -> float:
        price = self.lookup(model)
        return 0.0 if price is None else price.cost(usage)

    def note(self, model: str) -> str | None:
        """Why the spend of ``model`` reads 0.0 although it is not free, or None when priced."""
        if self.lookup(model) is not None:
            return None
        return f"prices unknown for {model!r} (not in the {self.source}): its cost is reported as 0.0"


DEFAULT_TABLE = PriceTable()


def cost(model: str, usage: Usage, table: PriceTable = DEFAULT_TABLE) -> float:
    """USD of one answer; 0.0 for a model without a price (see :meth:`PriceTable.note`)."""
    return table.cost(model, usage)


def _price(path: Path, name: str, entry: object) -> Price:
    where = f'{path}: [models."{name}"]'
    if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
        raise PricesError(f"{where} needs exactly the keys input and output (USD per 1M tokens)")
    values = []
    for key in ("input", "output"):
        value = entry[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise PricesError(f"{where} {key} = {value!r} is not a non-negative number of USD per 1M tokens")
        values.append(float(value))
    return Price(values[0], values[1])
