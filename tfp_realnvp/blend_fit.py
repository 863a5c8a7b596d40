"""The Gaussian mixture `fit` blends with the trained flow, and the blend's weight (no TF).

```none
p(x) = w p_flow(x) + (1 - w) p_mix(x)
w = argmax_w  sum_i log(w p_flow(x_i) + (1 - w) p_mix(x_i))   over held-out rows x_i
```
Every held-out row is scored by models that did not see it: member m of the flow on its own
validation rows (its split, or its fold of an ensemble) and a mixture fitted on member m's
training rows only. The number of components K is chosen on held-out rows as for the
mixture base (`base_fit`); the mixture the blend keeps is the average of `BAGS` mixtures
of K components refitted on all the rows from different starts (`bagged`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfp_realnvp import base_fit
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp.base_fit import Mixture

WEIGHTS = np.linspace(0.0, 1.0, 51)  # the flow weights tried
BAGS = 10  # mixtures averaged into the blended one (see `bagged`)


@dataclasses.dataclass(frozen=True)
class BlendMixtures:
    """`final`: the mixture the blend keeps (fitted on every row); `held_out[m]`: the
    log-density of member m's validation rows under a mixture fitted on its training rows;
    `validation_nll`: every candidate number of components tried and its held-out NLL."""

    final: Mixture
    held_out: tuple[np.ndarray, ...]
    validation_nll: dict[int, float]

    @property
    def components(self) -> int:
        return self.final.components

    def reason(self) -> str:
        tried = ", ".join(f"{k}: {v:.4g}" for k, v in self.validation_nll.items())
        return (f"the trained flow blended with the average of {BAGS} Gaussian mixtures of "
                f"{self.components // BAGS} components (the lowest held-out NLL, tried "
                f"{tried}) fitted from different starts; the flow's weight chosen on "
                "held-out rows after training")


def choose_mixtures(prepared: prepare_lib.PreparedData, seed: int,
                    steps: list[float] | None = None,
                    components: int | None = None) -> BlendMixtures:
    """The blend's mixtures for `prepared` (unconditional): `BAGS` mixtures of
    `components` each (None: chosen on held-out rows as `base_fit.choose_base` does, 1
    among the candidates; a resumed run passes its `blend_components // BAGS`: the fits
    are seeded, so it gets the same mixtures again)."""
    first = prepared.members[0]
    every_row = np.concatenate([first.train_events, first.validation_events])
    if len(prepared.members) == 1:
        fit_rows, held_out = first.train_events, first.validation_events
    else:
        fit_rows, held_out = prepare_lib.train_validation_split(every_row, 0.2, seed)
    fit_rows = base_fit.dequantised(fit_rows, steps, seed)
    if components is None:
        chosen, scores = base_fit.select(fit_rows, held_out, seed)
    else:
        chosen, scores = base_fit.fit_mixture(fit_rows, components, seed), {}
    if chosen is None:  # every candidate collapsed: the rows' Gaussian
        chosen = base_fit.fit_mixture(fit_rows, 1, seed)
    per_member = tuple(
        bagged(base_fit.dequantised(member.train_events, steps, seed + index), chosen,
               seed).log_prob(member.validation_events)
        for index, member in enumerate(prepared.members))
    final = bagged(base_fit.dequantised(every_row, steps, seed), chosen, seed)
    return BlendMixtures(final, per_member, scores)


def bagged(rows: np.ndarray, chosen: Mixture, seed: int, bags: int = BAGS) -> Mixture:
    """The equal-weight average of `bags` mixtures of `chosen`'s size fitted on `rows` from
    different seeded starts (one mixture of `bags * K` components; `chosen` stands in for
    a fit that collapses).

    EM from one start lands in one of many local optima, each wrong in its own places;
    their average has less variance. Measured (held-out NLL, seeds 0-4, 3,000 rows): two
    moons 0.3096 for one mixture, 0.3059 for 5, 0.3087 -> 0.3085 from 10 to 20 on seed 1;
    two circles 0.6297 -> 0.6222 for 5.
    """
    fits = [base_fit.fit_mixture(rows, chosen.components, seed + bag) or chosen
            for bag in range(bags)]
    return Mixture(np.concatenate([m.weights for m in fits]) / len(fits),
                   np.concatenate([m.means for m in fits]),
                   np.concatenate([m.covariances for m in fits]))


def choose_weight(flow_log_prob: np.ndarray, mixture_log_prob: np.ndarray) -> float:
    """The flow weight `w` of `WEIGHTS` with the highest mean held-out log-likelihood of
    `w p_flow + (1 - w) p_mix`, given both models' log-densities of the same rows (the
    first weight of a tie; non-finite log-densities count as -inf)."""
    flow = np.nan_to_num(np.asarray(flow_log_prob, np.float64), nan=-np.inf)
    mixture = np.nan_to_num(np.asarray(mixture_log_prob, np.float64), nan=-np.inf)
    with np.errstate(divide="ignore"):
        weights = np.log(WEIGHTS)[:, None], np.log1p(-WEIGHTS)[:, None]
        scores = np.logaddexp(weights[0] + flow, weights[1] + mixture).mean(axis=1)
    return float(WEIGHTS[int(np.argmax(scores))])
