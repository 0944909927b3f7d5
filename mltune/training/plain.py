"""Plain members: K ordinary networks behind the fused ``Pack``'s interface, each with its own
``torch.optim`` optimizer; and the optimizer(s) of either kind of pack as the trainer steps them.

A pack of one is an ordinary trial, as fast as a loop written for one network; a family that
cannot be fused (recurrent networks: no vmap rule) trains its members side by side this way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mltune.training.optim import make_optimizer, make_packed_optimizer
from mltune.training.packing import Pack, can_pack


class PlainPack(nn.Module):
    """K ordinary networks behind ``Pack``'s interface (``forward`` gives (K, N, ...))."""

    def __init__(self, networks: Sequence[nn.Module], compile_model: bool = False) -> None:
        super().__init__()
        if not networks:
            raise ValueError("a pack needs at least one member")
        self.networks = nn.ModuleList(networks)
        # what runs the forward pass: ``torch.compile`` of each network when asked (the same
        # parameters); a plain list, so the compiled wrappers are no submodules
        self.compile_model = compile_model
        self._run = [torch.compile(n) if compile_model else n for n in networks]
        self.slots = list(range(len(networks)))

    def forward(self, x: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        if len(self.slots) == 1 and not per_member:  # a view: a lone trial pays no stack
            return self._run[self.slots[0]](x).unsqueeze(0)
        return torch.stack([self._run[j](x[row] if per_member else x)
                            for row, j in enumerate(self.slots)])

    def lone(self, j: int) -> nn.Module:
        """What runs member ``j``'s forward pass (its network, or its compiled wrapper)."""
        return self._run[j]

    def add(self, networks: Sequence[nn.Module]) -> list[int]:
        """Members join a running pack (on its device already); their member numbers."""
        first = len(self.networks)
        for network in networks:
            self.networks.append(network)
            self._run.append(torch.compile(network) if self.compile_model else network)
        joined = list(range(first, len(self.networks)))
        self.slots += joined
        return joined

    def set_aside(self, members: Iterable[int]) -> list[int]:
        """Members that stopped are no longer computed; the rows of those who stay."""
        gone = set(members)
        kept = [row for row, j in enumerate(self.slots) if j not in gone]
        self.slots = [self.slots[row] for row in kept]
        return kept

    def member_state(self, j: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.networks[j].state_dict().items()}

    @torch.no_grad()
    def load_member_state(self, j: int, state: dict[str, torch.Tensor]) -> None:
        self.networks[j].load_state_dict(state)

    @torch.no_grad()
    def set_rates(self, j: int, network: nn.Module) -> None:
        """Member ``j``'s dropout rates become ``network``'s."""
        rates = {name: m.p for name, m in network.named_modules() if isinstance(m, nn.Dropout)}
        for name, module in self.networks[j].named_modules():
            if isinstance(module, nn.Dropout) and name in rates:
                module.p = rates[name]

    def forget(self, j: int) -> None:
        """A member that left holds nothing more (its network object is its trial's)."""
        self.networks[j] = nn.Identity()
        self._run[j] = self.networks[j]

    def load_into(self, j: int, network: nn.Module) -> nn.Module:
        if network is not self.networks[j]:
            network.load_state_dict(self.member_state(j))
        return network


AnyPack = Pack | PlainPack


def make_pack(networks: Sequence[nn.Module], compile_model: bool = False,
              fuse: bool = True) -> AnyPack:
    """Fused when there are several members of a family that fuses (and ``fuse``), plain
    otherwise (``compile_model``: the plain members' forward passes through
    ``torch.compile``)."""
    if fuse and len(networks) > 1 and can_pack(networks[0]) is None:
        return Pack(networks)
    return PlainPack(networks, compile_model)


def optimizer_key(name: str) -> str:
    """A hyperparameter's name as the optimizer calls it (``learning_rate`` -> ``lr``)."""
    if name == "learning_rate":
        return "lr"
    return name.split(".", 1)[1] if name.startswith("optimizer.") else name


class Optimizers:
    """The pack's optimizer(s) as the trainer steps them: one packed optimizer over the stacked
    weights, or one torch optimizer per plain member; both through the gradient scaler."""

    def __init__(self, pack: AnyPack, members: Sequence[Mapping[str, Any]]) -> None:
        self.pack = pack
        self.plain: list[torch.optim.Optimizer | None] = []
        if isinstance(pack, Pack):
            self.packed = make_packed_optimizer(list(pack.parameters()), members)
        else:
            self.plain = [make_optimizer(net, dict(p))
                          for net, p in zip(pack.networks, members, strict=True)]

    def zero_grad(self) -> None:
        if isinstance(self.pack, Pack):
            self.packed.zero_grad()
            return
        for j in self.pack.slots:
            self.plain[j].zero_grad(set_to_none=True)  # type: ignore[union-attr]

    def step(self, scaler: torch.amp.GradScaler, active: Sequence[bool] | None) -> None:
        """One step of every member, or of the ``active`` ones (by row) only."""
        if isinstance(self.pack, Pack):
            scaler.step(self.packed, active=active)  # type: ignore[arg-type]
        else:
            for row, j in enumerate(self.pack.slots):
                if active is None or active[row]:
                    scaler.step(self.plain[j])  # type: ignore[arg-type]
        scaler.update()

    @torch.no_grad()
    def copy(self, source: int, target: int, values: Mapping[str, Any]) -> None:
        """Member ``target`` takes ``source``'s optimizer state and values, then ``values``."""
        new = {optimizer_key(k): float(v) for k, v in values.items()}
        if isinstance(self.pack, Pack):
            rs, rt = self.pack.slots.index(source), self.pack.slots.index(target)
            for state in self.packed.state:
                for tensor in state.values():
                    tensor[rt].copy_(tensor[rs])
            for key, per_member in self.packed.hyper.items():
                per_member[rt] = new.get(key, per_member[rs])
            self.packed.steps[rt] = self.packed.steps[rs]
            self.packed.changed()
            return
        # a deep copy: load_state_dict keeps the very tensors it is given (step, moments)
        plain = self.plain[target]
        assert plain is not None and self.plain[source] is not None
        plain.load_state_dict(copy.deepcopy(self.plain[source].state_dict()))  # type: ignore[union-attr]
        for group in plain.param_groups:
            group.update({k: v for k, v in new.items() if k in group})

    def keep(self, rows: list[int]) -> None:
        """Only the members in ``rows`` go on (a fused pack's optimizer cuts the others')."""
        if isinstance(self.pack, Pack):
            self.packed.keep(rows, list(self.pack.parameters()))

    def add(self, members: Sequence[Mapping[str, Any]], networks: Sequence[nn.Module]) -> None:
        """Members that joined the pack (already added to it) get their optimizer rows."""
        if isinstance(self.pack, Pack):
            self.packed.add(list(self.pack.parameters()), members)
        else:
            self.plain += [make_optimizer(net, dict(p))
                           for net, p in zip(networks, members, strict=True)]

    def forget(self, j: int) -> None:
        """A plain member that left lets go of its optimizer state."""
        if not isinstance(self.pack, Pack):
            self.plain[j] = None
