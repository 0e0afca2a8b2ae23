"""``.model`` cards: read one into a `_Model` of a type in `MODEL_TYPES`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..laws import LAWS, AbstractLaw, Linear
from .lexer import _Card
from .tables import MODEL_TYPES, REQUIRED, _Model

if TYPE_CHECKING:
    from .parser import _Parser


def read_model(p: _Parser, card: _Card) -> None:
    """Read ``.model NAME TYPE(param=value ...)`` into ``p.models``."""
    tokens = card.tokens
    if len(tokens) < 3 or tokens[1] in "()=" or tokens[2] in "()=":
        raise p.error(card, f"{card.text!r}: expected '.model NAME TYPE(param=value ...)'")
    name, kind = tokens[1], tokens[2].upper()
    if kind not in MODEL_TYPES:
        raise p.error(
            card,
            f"model {name!r} has unknown type {tokens[2]!r} in {card.text!r}; "
            f"supported model types are {', '.join(MODEL_TYPES)}",
        )
    if name.lower() in p.models:
        first = p.models[name.lower()].place
        raise p.error(card, f"model {name!r} is defined twice (first on {first})")
    model = _Model(name=name, type=kind, place=card.place)
    fill_parameters(p, card, model, dict(model_pairs(p, card, name, tokens[3:])))
    p.models[name.lower()] = model


def model_pairs(p: _Parser, card: _Card, name: str, tokens: list[str]) -> list[tuple[str, str]]:
    """``( k = v k = v )`` (parentheses optional) into ``[(k, v), ...]`` with lower-case k."""
    if tokens and tokens[0] == "(":
        if tokens[-1] != ")":
            raise p.error(card, f"model {name!r}: missing ')' in {card.text!r}")
        tokens = tokens[1:-1]
    pairs = []
    seen = set()
    for i in range(0, len(tokens), 3):
        key, equals, value = (tokens[i : i + 3] + ["", "", ""])[:3]
        if key in "()=" or equals != "=" or value in "()=":
            raise p.error(
                card,
                f"model {name!r}: expected 'param=value' at {' '.join(tokens[i:])!r} "
                f"in {card.text!r}",
            )
        if key.lower() in seen:
            raise p.error(
                card, f"model {name!r}: parameter {key!r} is given twice in {card.text!r}"
            )
        seen.add(key.lower())
        pairs.append((key.lower(), value))
    return pairs


def fill_parameters(p: _Parser, card: _Card, model: _Model, given: dict[str, str]) -> None:
    """Check ``given`` against the type's parameters and fill ``model.params`` (defaults for
    the missing ones) and ``model.law``."""
    spec = MODEL_TYPES[model.type]
    for key, token in given.items():
        if key in spec.params:
            continue
        if spec.spice:
            p.warn(
                card,
                f"{_kind(spec)}model {model.name!r}: parameter {key.upper()}={token} is not "
                "used by fracprop and is ignored",
            )
        else:
            raise p.error(
                card,
                f"model {model.name!r} ({model.type}): unknown parameter {key!r} in "
                f"{card.text!r}; its parameters are {', '.join(spec.params)}",
            )
    for key, default in spec.params.items():
        if key == "law":
            continue
        shown = key.upper() if spec.spice else key
        if key in given:
            value = p.value(card, given[key], f"model {model.name!r} parameter {shown}")
        elif default is REQUIRED:
            raise p.error(
                card,
                f"model {model.name!r} ({model.type}): missing required parameter "
                f"{key!r} in {card.text!r}",
            )
        else:
            value = default
        if key == "alpha":
            if not 0 < value <= 1:
                raise p.error(
                    card,
                    f"model {model.name!r}: alpha={given[key]} must lie in (0, 1] in {card.text!r}",
                )
        elif not value > 0:
            raise p.error(
                card,
                f"model {model.name!r}: {shown}={value:g} must be positive in {card.text!r}",
            )
        model.params[key] = value
    if "law" in spec.params:
        model.law = make_law(p, card, model, given)


def _kind(spec) -> str:
    return "diode " if spec.card == "D" else ""


def make_law(p: _Parser, card: _Card, model: _Model, given: dict[str, str]) -> AbstractLaw:
    """The law named by ``law=`` (default linear), scaled by the type's scale parameter."""
    law_name = given.get("law", "linear").lower()
    if law_name not in LAWS:
        raise p.error(
            card,
            f"model {model.name!r}: unknown law {given['law']!r} in {card.text!r}; "
            f"choose one of {', '.join(LAWS)}",
        )
    scale_key = MODEL_TYPES[model.type].scale
    if law_name == "linear":
        if scale_key in given:
            p.warn(card, f"model {model.name!r}: {scale_key} has no effect with law=linear")
        return Linear()
    return LAWS[law_name](model.params[scale_key])
