"""`MixtureBlend`: the trained flow blended with a Gaussian mixture, itself a TFP distribution.

```none
p(x) = w p_flow(x) + (1 - w) p_mix(x)
log_prob(x) = logsumexp(log w + log p_flow(x), log(1 - w) + log p_mix(x))
sample:       x ~ p_flow with probability w, else x ~ p_mix   (stateless with a Tensor seed)
```
`p_mix` is a full-covariance Gaussian mixture in data units fitted on the training rows and
`w` the weight with the lowest held-out NLL, chosen by `fit` after training
(`blend_fit.py`): `w = 0` is the mixture itself, `w = 1` the flow, so on the held-out rows
the blend is never worse than either; where their errors differ it beats both (a flow
squeezes some fresh rows that the mixture covers, and the other way round). Both the
mixture and `w` are non-trainable variables: checkpoints and SavedModels carry them.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers

from tfp_realnvp import base as base_lib
from tfp_realnvp.base_fit import Mixture

tfd = tfp.distributions


class MixtureBlend(tfd.Distribution):
    """`w p_flow + (1 - w) p_mix` over the events of `flow` (a flow or a `FlowEnsemble`).

    Keyword arguments of `log_prob`/`sample` go to `flow` (the mixture takes none). `flow`
    is kept as an attribute, so its variables are tracked; `w` starts at 1 (the flow
    alone) until `set_blend`.
    """

    def __init__(self, flow: tfd.Distribution, components: int, validate_args: bool = False,
                 name: str = "mixture_blend") -> None:
        parameters = dict(locals())
        if components < 1:
            raise ValueError(f"A MixtureBlend needs at least 1 component; got {components}.")
        with tf.name_scope(name) as name:
            self._flow = flow
            dim = int(flow.event_shape[-1])
            self._mixture = base_lib.variable_mixture(dim, [], components, "blend")
            self.flow_weight = tf.Variable(1.0, trainable=False, name="flow_weight")
            super().__init__(dtype=flow.dtype, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=True,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return {}

    @property
    def flow(self) -> tfd.Distribution:
        """The trained flow (one flow or an ensemble)."""
        return self._flow

    @property
    def mixture(self) -> tfd.MixtureSameFamily:
        return self._mixture

    def set_blend(self, mixture: Mixture, flow_weight: float) -> None:
        """Sets the blended mixture (data units) and the flow's weight `w` in [0, 1]."""
        if not 0.0 <= flow_weight <= 1.0:
            raise ValueError(f"'flow_weight' must be in [0, 1]; got {flow_weight}.")
        base_lib.set_member_mixture(self._mixture, 0, 1, mixture)
        self.flow_weight.assign(flow_weight)

    def _event_shape(self):
        return self._flow.event_shape

    def _event_shape_tensor(self):
        return self._flow.event_shape_tensor()

    def _batch_shape(self):
        return self._flow.batch_shape

    def _batch_shape_tensor(self):
        return self._flow.batch_shape_tensor()

    def _log_prob(self, x, **kwargs):
        weight = tf.convert_to_tensor(self.flow_weight)
        flow = tf.math.log(weight) + self._flow.log_prob(x, **kwargs)
        mixture = tf.math.log1p(-weight) + self._mixture.log_prob(x)
        return tf.reduce_logsumexp(tf.stack([flow, mixture], axis=-1), axis=-1)

    def _call_sample_n(self, sample_shape, seed, **kwargs):
        flow_seed, mixture_seed, pick_seed = samplers.split_seed(seed, n=3,
                                                                 salt="MixtureBlend")
        from_flow = self._flow.sample(sample_shape, seed=flow_seed, **kwargs)
        from_mixture = self._mixture.sample(tf.shape(from_flow)[:-1], seed=mixture_seed)
        pick = samplers.uniform(tf.shape(from_flow)[:-1], seed=pick_seed) < self.flow_weight
        return tf.where(pick[..., tf.newaxis], from_flow, from_mixture)


def blended_flow(dist: tfd.Distribution) -> tfd.Distribution:
    """The flow inside a `MixtureBlend`, or `dist` itself."""
    return dist.flow if isinstance(dist, MixtureBlend) else dist
