"""What keeps the reconciler from acting on a stored PodCliqueSet at all.

The webhooks refuse every invalid spec, but a PodCliqueSet may have been stored without them (before they
were installed, by an older version, by Grove). Most rules such an object breaks still leave a spec the
reconciler can act on, and it does. Two kinds of fault do not: a spec our models cannot read (the planner
would fail on every pass, retrying forever), and startup dependencies that can never be met (`startsAfter`
naming a clique that is not there, or a cycle: every grove-initc of the cliques involved would wait forever).
For those the reconciler creates nothing and says why (docs/decisions.md, "Specs the reconciler cannot act
on").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from grove_api.fielderrors import FieldError
from grove_api.models import PodCliqueSet

from .podcliqueset import validate_dependencies
from .schema import schema_errors


def unactionable(pcs: Mapping[str, Any]) -> list[FieldError]:
    """The faults of a stored (defaulted) PodCliqueSet that keep the reconciler from acting on it; [] when
    it can."""
    try:
        model = PodCliqueSet.from_dict(dict(pcs))
    except ValidationError as err:
        return schema_errors(err)
    return validate_dependencies(model)
