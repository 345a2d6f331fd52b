"""Option objects: frozen dataclasses that hold one component's options (torch-free).

A component (a pruning criterion, a causal rule, a design specification) is a
frozen dataclass deriving from :class:`OptionSet`.  Its ``name`` is its class
name in snake case; it is built from the plain table of a study configuration
by :meth:`OptionSet.from_dict` (unknown keys are errors that name them) and
written back by :meth:`OptionSet.to_dict`; :meth:`OptionSet.changed_options`
lists the fields that differ from their defaults, which labels show.
"""

import dataclasses
import numbers
import re
from collections.abc import Mapping


def snake_case(name):
    """``"LassoRank"`` → ``"lasso_rank"``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def format_value(value):
    """A field's value as labels show it: ``0.01``, ``1e-08``, ``2``, ``momentum``.

    Numbers print in their shortest round-trip form (NumPy scalars as Python
    numbers, integral values without a decimal point), so equal values look
    alike and different values never do."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 2 ** 53 else repr(number)
    return str(value)


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
    """``value`` if it is a real number (an integer with ``integer``) inside the bounds,
    else a ``ValueError`` naming ``name`` and the value."""
    ok = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return value
    kind = "integer" if integer else "number"
    if high is None and integer and low == 1 and not low_open:
        wanted = "a positive integer"
    elif high is None and low == 0:
        wanted = f"a {'positive' if low_open else 'non-negative'} {kind}"
    elif high is None and low is not None:
        wanted = f"an {kind} {'>' if low_open else '>='} {low}" if integer else \
            f"a number {'>' if low_open else '>='} {low}"
    else:
        wanted = (f"a {kind} in {'(' if low_open else '['}{'-inf' if low is None else low}, "
                  f"{high}{')' if high_open else ']'}")
    raise ValueError(f"{name} must be {wanted}, got {value!r}")


class OptionSet:
    """Base of the frozen dataclasses that configure a component."""

    name = "option_set"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.name = snake_case(cls.__name__)

    @classmethod
    def option_names(cls):
        """The component's options, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, table):
        """The component configured by a plain table (as read from TOML).

        A ``name`` key, when present, must be this component's name; a table
        given for an option is converted by :meth:`_option_from_dict`."""
        if not isinstance(table, Mapping):
            raise ValueError(f"{cls.name} takes a table of options, got {table!r}")
        table = dict(table)
        name = table.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"a table named {name!r} cannot configure {cls.name!r}")
        known = cls.option_names()
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for {cls.name!r}; known: {known}")
        return cls(**{key: cls._option_from_dict(key, value) if isinstance(value, Mapping) else value
                      for key, value in table.items()})

    @classmethod
    def _option_from_dict(cls, key, table):
        raise ValueError(f"option {key!r} of {cls.name!r} takes a value, not a table ({table!r})")

    def to_dict(self):
        """The plain table that :meth:`from_dict` turns back into this object."""
        out = {"name": self.name}
        for key in self.option_names():
            value = getattr(self, key)
            out[key] = value.to_dict() if isinstance(value, OptionSet) else value
        return out

    def changed_options(self, exclude=()):
        """``[(option, value), ...]`` of the options that differ from their defaults;
        an option holding a component contributes that component's changed options."""
        changed = []
        for f in dataclasses.fields(self):
            if f.name in exclude:
                continue
            value = getattr(self, f.name)
            if isinstance(value, OptionSet):
                changed += value.changed_options()
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if value != default:
                changed.append((f.name, value))
        return changed
