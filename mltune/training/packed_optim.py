"""Optimizers for a pack: every member with its own learning rate, weight decay, momentum and
betas, over the stacked weights (first dimension: the member).

PyTorch's optimizers take one value per parameter group and refuse a tensor of per-member
learning rates, so the updates are written here, with the same arithmetic as ``torch.optim``
(a member's weights move exactly as they would alone, up to float rounding). When members stop
(pruned, diverged, early-stopped), the pack cuts their rows from the stacked weights and
``keep`` cuts the same rows from the optimizer's values and state; members that join a running
pack get new rows (``add``) with fresh state and their own step count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mltune.training.defaults import learning_rate, optimizer_options


def _per_member(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """(K,) values shaped (K, 1, 1, ...) to broadcast over a stacked weight."""
    column = torch.tensor(values, dtype=torch.float64)
    return column.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class PackedOptimizer:
    """Base: per-member hyperparameters, state per stacked weight, ``zero_grad``/``step``."""

    defaults: dict[str, float] = {}

    def __init__(self, weights: Sequence[torch.nn.Parameter],
                 members: Sequence[Mapping[str, Any]]) -> None:
        self.weights = list(weights)
        lrs = [learning_rate(m) for m in members]
        decays = [float(m.get("weight_decay", 0.0)) for m in members]
        options = [optimizer_options(m) for m in members]
        self.hyper = {"lr": lrs, "weight_decay": decays}
        for key, default in self.defaults.items():
            self.hyper[key] = [float(o.get(key, default)) for o in options]
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.weights]
        self.steps = [0] * len(members)  # each member's own: one that joined later has fewer
        # (name, rank, dtype, device) -> the per-member column of a value: made once, not
        # once a weight a step (``changed`` forgets them when the values change)
        self._columns: dict[tuple[Any, ...], torch.Tensor] = {}

    def changed(self) -> None:
        """The members' values (``hyper``) or step counts were changed from outside."""
        self._columns.clear()

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """What ``torch.amp.GradScaler`` walks to unscale the gradients and find infs."""
        return [{"params": self.weights}]

    def zero_grad(self) -> None:
        for w in self.weights:
            w.grad = None

    @torch.no_grad()
    def keep(self, rows: Sequence[int], weights: Sequence[torch.nn.Parameter]) -> None:
        """Only the members in ``rows`` (of the stacked weights, as they were) go on: their
        values and state stay, in that order, for ``weights``, the pack's weights cut the
        same way."""
        self.weights = list(weights)
        self.hyper = {key: [values[row] for row in rows] for key, values in self.hyper.items()}
        self.steps = [self.steps[row] for row in rows]
        self.changed()
        for state in self.state:
            for key, value in state.items():
                state[key] = value.index_select(
                    0, torch.tensor(rows, dtype=torch.long, device=value.device))

    @torch.no_grad()
    def add(self, weights: Sequence[torch.nn.Parameter], members: Sequence[Mapping[str, Any]]
            ) -> None:
        """Members join as new last rows of ``weights`` (the pack's, grown): their own values,
        zero state (what a fresh torch optimizer's first step amounts to) and no steps yet."""
        joined = type(self)(weights, members)
        self.weights = list(weights)
        self.changed()
        for key, values in joined.hyper.items():
            self.hyper[key] = self.hyper[key] + values
        self.steps += joined.steps
        for state in self.state:
            for key, value in state.items():
                fresh = value.new_zeros((len(members), *value.shape[1:]))
                state[key] = torch.cat([value, fresh])

    def _value(self, key: str, w: torch.Tensor) -> torch.Tensor:
        return self._column(key, self.hyper[key], w)

    def _column(self, name: str, values: Sequence[float], w: torch.Tensor) -> torch.Tensor:
        """``values`` shaped to broadcast over ``w``, kept until ``changed``."""
        key = (name, w.dim(), w.dtype, w.device)
        column = self._columns.get(key)
        if column is None:
            column = self._columns[key] = _per_member(values, w)
        return column

    @torch.no_grad()
    def step(self, active: Sequence[bool] | None = None) -> None:
        """One update of every member, or of the ``active`` ones (by row): the others' rows
        of the weights and the state are put back as they were, their step counts kept."""
        if active is None or all(active):
            active = None
        self.steps = [n + 1 if active is None or active[row] else n
                      for row, n in enumerate(self.steps)]
        for key in [k for k in self._columns if k[0].startswith("step:")]:
            del self._columns[key]  # what depends on the step counts is made anew
        self.prepare()
        for w, state in zip(self.weights, self.state, strict=True):
            if w.grad is None:
                continue
            if active is None:
                self.update(w, w.grad, state)
                continue
            still = torch.tensor([not a for a in active], device=w.device)
            weights = w[still].clone()
            kept = {key: value[still].clone() for key, value in state.items()}
            self.update(w, w.grad, state)
            w[still] = weights
            for key, value in kept.items():
                state[key][still] = value

    def prepare(self) -> None:
        """What a step's updates share, computed once a step rather than once a weight."""

    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor]
               ) -> None:
        raise NotImplementedError


class PackedSGD(PackedOptimizer):
    defaults = {"momentum": 0.9, "nesterov": 0.0}

    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor]
               ) -> None:
        lr = self._value("lr", w)
        grad = grad + self._value("weight_decay", w) * w
        momentum = self._value("momentum", w)
        if "buf" not in state:
            state["buf"] = grad.clone()
        else:
            state["buf"].mul_(momentum).add_(grad)
        buf = state["buf"]
        nesterov = self._value("nesterov", w) * (momentum > 0)
        direction = torch.where(nesterov > 0, grad + momentum * buf, buf)
        direction = torch.where(momentum > 0, direction, grad)
        w.sub_(lr * direction)


class PackedAdam(PackedOptimizer):
    defaults = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    decoupled = False  # AdamW: weight decay applied to the weights, not the gradient

    def prepare(self) -> None:
        """Each member's bias corrections for its own step count (members that joined later
        have taken fewer steps)."""
        step = torch.tensor(self.steps, dtype=torch.float64)
        b1 = torch.tensor(self.hyper["beta1"], dtype=torch.float64)
        b2 = torch.tensor(self.hyper["beta2"], dtype=torch.float64)
        self._correction1 = (1.0 / (1 - b1 ** step)).tolist()
        self._correction2_sqrt = ((1 - b2 ** step) ** 0.5).tolist()

    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor]
               ) -> None:
        lr = self._value("lr", w)
        decay = self._value("weight_decay", w)
        if self.decoupled:
            w.mul_(1 - lr * decay)
        else:
            grad = grad + decay * w
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(w)
            state["exp_avg_sq"] = torch.zeros_like(w)
        beta1, beta2 = self._value("beta1", w), self._value("beta2", w)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad * (1 - beta2))
        step_size = self._column("step:correction1", self._correction1, w) * lr
        correction2_sqrt = self._column("step:correction2", self._correction2_sqrt, w)
        denom = (exp_avg_sq.sqrt() / correction2_sqrt).add_(self._value("eps", w))
        w.sub_(step_size * exp_avg / denom)


class PackedAdamW(PackedAdam):
    decoupled = True


class PackedRMSprop(PackedOptimizer):
    defaults = {"momentum": 0.0, "alpha": 0.99, "eps": 1e-8}

    def update(self, w: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor]
               ) -> None:
        lr = self._value("lr", w)
        grad = grad + self._value("weight_decay", w) * w
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(w)
            state["buf"] = torch.zeros_like(w)
        alpha = self._value("alpha", w)
        square_avg = state["square_avg"]
        square_avg.mul_(alpha).addcmul_(grad, grad * (1 - alpha))
        avg = square_avg.sqrt().add_(self._value("eps", w))
        momentum = self._value("momentum", w)
        buf = state["buf"]
        buf.mul_(momentum).add_(grad / avg)
        w.sub_(lr * torch.where(momentum > 0, buf, grad / avg))
