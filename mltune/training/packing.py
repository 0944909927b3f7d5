"""Fused members: K networks of one shape trained as one (stack, forward, unstack).

The members' weights and buffers are stacked along a new first dimension and the network's own
``forward`` runs once per batch for all of them, through ``torch.func.functional_call`` under
``vmap`` (``randomness="different"``: each member draws its own dropout masks and
augmentations). Dense layers become batched matmuls, convolutions grouped convolutions;
BatchNorm's running statistics are stacked buffers, so each member keeps its own.

What may differ between members is whatever lives in the weights and buffers: initial weights
(the init scheme), BatchNorm statistics, and dropout rates, which are moved into buffers here
(``RatedDropout``). Everything structural (layer sizes, activations, which layers exist) must be
the same: that is the pack's shape key. Recurrent layers have no vmap rule in PyTorch
(pytorch#105982): a network that holds one cannot be packed (``can_pack``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

UNPACKABLE = (nn.RNNBase,)  # no batching rule for the fused recurrent kernels


def can_pack(network: nn.Module) -> str | None:
    """None when ``network`` can be packed, else the reason it cannot."""
    for name, module in network.named_modules():
        if isinstance(module, UNPACKABLE):
            return (f"its layer {name or 'network'} ({type(module).__name__}) has no batched "
                    "(vmap) form in PyTorch")
    return None


class RatedDropout(nn.Module):
    """Dropout whose rate is a buffer, so that the members of a pack each keep their own.

    The buffer is not persistent: a member's state dict is the ordinary network's.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        keep = 1.0 - self.p
        mask = torch.rand_like(x) < keep
        return torch.where(mask, x / keep.clamp(min=1e-12), torch.zeros_like(x))


def with_rated_dropout(network: nn.Module) -> nn.Module:
    """A copy of ``network`` whose ``nn.Dropout`` layers read their rate from a buffer."""
    network = copy.deepcopy(network)
    for parent in network.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, RatedDropout(child.p))
    return network


def _same_shapes(networks: Sequence[nn.Module]) -> None:
    first = {k: (v.shape, v.dtype) for k, v in networks[0].state_dict().items()}
    for j, network in enumerate(networks[1:], start=1):
        other = {k: (v.shape, v.dtype) for k, v in network.state_dict().items()}
        if other != first:
            differ = sorted(k for k in first.keys() | other.keys()
                            if first.get(k) != other.get(k))
            raise ValueError(f"member {j} differs in shape from member 0 at "
                             f"{', '.join(differ[:3])}: members of a pack must share a shape")


class Pack(nn.Module):
    """K same-shape networks as one module: ``forward(x)`` gives (K, N, ...) outputs.

    The stacked weights are this module's parameters (one leaf per layer, first dim K), so
    any optimizer over them updates every member; ``member_state(j)`` and ``load_into``
    give member ``j`` back as its own network. Members that stop training are set aside
    (``set_aside``): the stacked weights then hold only the others, in ``slots`` order.
    """

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        if not networks:
            raise ValueError("a pack needs at least one member")
        _same_shapes(networks)
        rated = [with_rated_dropout(n) for n in networks]
        params, buffers = stack_module_state(rated)
        self._names = list(params)
        self._buffer_names = list(buffers)
        self.stacked = nn.ParameterList([nn.Parameter(params[k]) for k in self._names])
        for i, name in enumerate(self._buffer_names):
            self.register_buffer(f"b{i}", buffers[name])
        self._template = [copy.deepcopy(rated[0]).to("meta")]  # a list: not a submodule
        self.slots = list(range(len(networks)))  # the member in each row of the stacked weights
        self.count = len(networks)  # members the pack ever had (set aside and forgotten too)
        self._aside: dict[int, dict[str, torch.Tensor]] = {}  # set-aside members' states

    @property
    def template(self) -> nn.Module:
        return self._template[0]

    def _buffers_by_name(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, f"b{i}") for i, name in enumerate(self._buffer_names)}

    def forward(self, x: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """(K, N, ...) outputs of one batch ``x`` shared by every member, or, ``per_member``,
        of a (K, N, ...) input whose row k is member k's own batch."""
        params = dict(zip(self._names, self.stacked, strict=True))
        buffers = self._buffers_by_name()
        template = self.template
        template.train(self.training)

        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(template, (p, b), (inputs,))

        batched = vmap(one, in_dims=(0, 0, 0 if per_member else None), randomness="different")
        return batched(params, buffers, x)

    @torch.no_grad()
    def add(self, networks: Sequence[nn.Module]) -> list[int]:
        """Members join a running pack as new last rows (fresh weights, their own buffers);
        their member numbers, which continue after every member the pack ever had. The
        stacked weights become new parameters, as in ``set_aside``."""
        _same_shapes([self.template_like(), *networks])
        params, buffers = stack_module_state([with_rated_dropout(n) for n in networks])
        device = self.stacked[0].device
        live = bool(self.slots)
        self.stacked = nn.ParameterList([
            nn.Parameter(torch.cat([w.detach(), params[k].to(device)]) if live
                         else params[k].to(device))
            for k, w in zip(self._names, self.stacked, strict=True)])
        for i, (name, buffer) in enumerate(self._buffers_by_name().items()):
            fresh = buffers[name].to(device)
            setattr(self, f"b{i}", torch.cat([buffer, fresh]) if live else fresh)
        joined = list(range(self.count, self.count + len(networks)))
        self.count += len(networks)
        self.slots += joined
        return joined

    def template_like(self) -> nn.Module:
        """An ordinary network of the pack's shape (on the CPU, weights not meaningful), to
        check a joining member against."""
        network = copy.deepcopy(self.template).to_empty(device="cpu")
        return network

    @torch.no_grad()
    def set_aside(self, members: Iterable[int]) -> list[int]:
        """Take members that stopped (pruned, diverged, early-stopped, out of time) out of
        the fused network, their weights kept for ``member_state``: each pass then computes
        only the members still training, so a pruned member saves its pack time, not only
        its epochs. The stacked weights become new parameters (autograd keeps a leaf's
        shape), which an optimizer over them is given by its ``keep`` with the rows
        returned: those of the members that stay, as they were numbered before."""
        gone = [j for j in members if j in self.slots]
        for j in gone:
            self._aside[j] = self.member_state(j)
        kept = [row for row, j in enumerate(self.slots) if j not in gone]
        if gone and kept:
            rows = torch.tensor(kept, device=self.stacked[0].device)
            self.stacked = nn.ParameterList([nn.Parameter(w.detach().index_select(0, rows))
                                             for w in self.stacked])
            for i, buffer in enumerate(self._buffers_by_name().values()):
                setattr(self, f"b{i}", buffer.index_select(0, rows))
        self.slots = [self.slots[row] for row in kept]
        return kept

    def member_state(self, j: int) -> dict[str, torch.Tensor]:
        """Member ``j``'s weights and persistent buffers as its own network's state dict."""
        if j in self._aside:
            return {k: v.clone() for k, v in self._aside[j].items()}
        row = self.slots.index(j)
        keys = set(self.template.state_dict())
        state = {k: p[row].detach().clone() for k, p in zip(self._names, self.stacked,
                                                            strict=True)}
        state.update({k: b[row].detach().clone() for k, b in self._buffers_by_name().items()
                      if k in keys})
        return state

    @torch.no_grad()
    def set_rates(self, j: int, network: nn.Module) -> None:
        """Member ``j``'s dropout rates (buffers of its row) become those of ``network`` (an
        ordinary network of the pack's shape): an exploit's new ``dropout``."""
        rated = dict(with_rated_dropout(network).named_buffers())
        row = self.slots.index(j)
        for name, buffer in self._buffers_by_name().items():
            if name.endswith(".p") and name in rated:
                buffer[row].copy_(rated[name])

    def forget(self, j: int) -> None:
        """Let go of a member that left (its weights were taken: ``load_into``)."""
        self._aside.pop(j, None)

    @torch.no_grad()
    def load_member_state(self, j: int, state: dict[str, torch.Tensor]) -> None:
        """Put a state taken by ``member_state`` back as member ``j``'s (early stopping)."""
        if j in self._aside:
            self._aside[j].update({k: v.detach().clone() for k, v in state.items()})
            return
        row = self.slots.index(j)
        for name, stacked in zip(self._names, self.stacked, strict=True):
            stacked[row].copy_(state[name])
        for name, buffer in self._buffers_by_name().items():
            if name in state:
                buffer[row].copy_(state[name])

    def load_into(self, j: int, network: nn.Module) -> nn.Module:
        """Member ``j``'s trained weights in ``network`` (the task's ordinary network)."""
        device = self.stacked[0].device
        network.load_state_dict({k: v.to(device) for k, v in self.member_state(j).items()})
        return network
