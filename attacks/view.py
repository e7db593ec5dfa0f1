"""The attack-time view of a classifier: what attacks call instead of the live model.

Attacks need the gradient of a loss with respect to the *input* only, of the model in eval mode, many
times per training batch. The view makes that call as cheap as the hardware allows:

* ``torch.fx`` traces the model once (in eval mode) and fuses every conv that feeds a BatchNorm (in
  DenseNet-BC: the bottleneck's 1x1 conv and the BN after it) into one conv whose weight and bias are
  computed from the live conv weight and BN statistics;
* inputs and fused weights are channels-last; the forward runs under autocast (bf16 where the device
  has it, else fp16) and returns fp32 logits;
* every other module of the traced graph *is* the live module (fx keeps references), so nothing is
  copied: ``refresh()`` only recomputes the fused weights (a few small tensor ops per fused pair), and
  ``attack_mode`` calls it each time it is entered, so the view always matches the live weights;
* ``exact(x)`` is the same graph in fp32 without autocast: the fallback for samples whose
  reduced-precision input gradient is zero or non-finite (see ``attacks.input_grad``).

The view is built on first use and kept on the model object (not a submodule: no state_dict entry); it
is rebuilt when the model's modules were replaced (e.g. by ``--sync-bn`` conversion). A model fx cannot
trace is used unfused, still channels-last and under autocast.
"""
from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

import runtime

_ATTR = "_advgen_attack_view"


class FusedConvBN(nn.Module):
    """``bn(conv(x))`` in eval mode as one conv; weights refreshed from the live ``conv`` and ``bn``."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d):
        super().__init__()
        self.src = (conv, bn)                 # a tuple: the live modules are not registered twice
        self.register_buffer("weight", torch.empty(0), persistent=False)
        self.register_buffer("bias", torch.empty(0), persistent=False)
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        conv, bn = self.src
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) * torch.rsqrt(bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        bias = shift - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        weight = conv.weight * scale.view(-1, 1, 1, 1)                          # [C_out, C_in, kh, kw]
        self.weight = weight.contiguous(memory_format=torch.channels_last)
        self.bias = bias.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.src[0]
        return F.conv2d(x, self.weight, self.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def fuse_conv_bn(model: nn.Module) -> tuple[nn.Module, list[FusedConvBN]]:
    """Trace ``model`` (in eval mode) and fuse conv -> BatchNorm pairs; returns (graph module, fused).

    Falls back to ``(model, [])`` when fx cannot trace the model."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception:                                   # data-dependent control flow etc.: no fusion
        return model, []
    finally:
        for m, training in modes:
            m.training = training
    modules = dict(gm.named_modules())
    fused: list[FusedConvBN] = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(modules.get(node.target)) is not nn.BatchNorm2d:
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1
                and type(modules.get(src.target)) is nn.Conv2d):
            continue
        module = FusedConvBN(modules[src.target], modules[node.target])
        name = f"fused_{len(fused)}"
        gm.add_submodule(name, module)
        with gm.graph.inserting_after(src):
            new = gm.graph.call_module(name, src.args, src.kwargs)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        gm.graph.erase_node(src)
        fused.append(module)
    gm.graph.lint()
    gm.recompile()
    return gm, fused


class AttackView:
    """Callable ``x [B, C, H, W] in [0, 1] -> fp32 logits [B, K]``; see the module docstring."""

    def __init__(self, model: nn.Module):
        self.model = model
        self._modules = tuple(model.modules())
        self.graph, self.fused = fuse_conv_bn(model)
        self.graph.eval()
        device = next(model.parameters(), torch.empty(0)).device
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range
        self.grad_scale = 1024.0 if runtime.autocast_dtype(device) == torch.float16 else 1.0

    @classmethod
    def of(cls, model: nn.Module) -> "AttackView":
        """The view kept on ``model``, built (or rebuilt after module replacement) when needed."""
        view = model.__dict__.get(_ATTR)
        if view is None or not view.matches(model):
            view = cls(model)
            model.__dict__[_ATTR] = view            # plain attribute: not a submodule, not in state_dict
        return view

    def matches(self, model: nn.Module) -> bool:
        return self.model is model and self._modules == tuple(model.modules())    # modules compare by identity

    def refresh(self) -> "AttackView":
        for m in self.fused:
            m.refresh()
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(x.device, True):
            out = self.graph(x)
        return as_logits(out).float()

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        """The same graph in fp32 (autocast off, also inside an outer autocast)."""
        with torch.autocast(x.device.type, enabled=False):
            return as_logits(self.graph(x.contiguous(memory_format=torch.channels_last))).float()


def as_logits(out) -> torch.Tensor:
    """The logits in a model's output: a tensor, ``out["logits"]``, ``out.logits`` or ``out[0]``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return out["logits"]
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    raise TypeError(f"cannot find logits in a model output of type {type(out).__name__}")
