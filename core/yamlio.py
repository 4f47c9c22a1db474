"""YAML read the way people write numbers: ``lr: 1e-3`` is the number 0.001.

PyYAML implements YAML 1.1, whose float rule needs a dot (``1.0e-3``): ``1e-3`` and ``3e-4``
load as *strings*, and a sweep would only find out inside a trial. :func:`load_yaml` is
``yaml.safe_load`` (no objects are ever constructed) with YAML 1.2's float rule added.

Example::

    load_yaml("lr: 1e-3")   # {'lr': 0.001}
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader plus YAML 1.2 floats (exponent without a dot)."""


_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse ``text`` safely; raises ``yaml.YAMLError`` on malformed input."""
    return yaml.load(text, Loader=_Loader)
