"""DenseNet-BC: parameter counts of the presets, normalisation inside, fx tracing, memory-efficient mode."""
from __future__ import annotations

import pytest
import torch
import torch.fx

from classifier import PRESETS, build_classifier


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_densenet_bc_100_12_has_0_8m_parameters():
    assert abs(n_params(build_classifier("densenet-bc-100-12", num_classes=100)) / 0.8e6 - 1) < 0.03


def test_densenet_bc_190_40_has_25_6m_parameters():
    assert abs(n_params(build_classifier("densenet-bc-190-40", num_classes=100)) / 25.6e6 - 1) < 0.03


@pytest.mark.parametrize("arch", [a for a in PRESETS if a != "densenet-bc-190-40"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_feature_split(arch, channels):
    model = build_classifier(arch, num_classes=7, in_channels=channels, mean=[0.5] * channels,
                             std=[0.2] * channels).eval()
    x = torch.rand(2, channels, 32, 32)
    feats = model.features(x)
    assert feats.shape == (2, model.num_features)
    assert torch.allclose(model.head(feats), model(x))


def test_normalisation_is_the_first_layer_and_travels_in_the_state_dict():
    model = build_classifier("densenet-bc-22-8", num_classes=3, in_channels=1, mean=[0.3], std=[0.2])
    sd = model.state_dict()
    assert torch.allclose(sd["features.0.mean"].flatten(), torch.tensor([0.3]))
    assert torch.allclose(sd["features.0.std"].flatten(), torch.tensor([0.2]))


def test_fx_traceable_and_equal():
    model = build_classifier("densenet-bc-22-8", num_classes=10).eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(graph(x), model(x))
    assert sum(n.op == "call_module" and "conv1" in n.target for n in graph.graph.nodes) == 9  # 3 blocks x 3 bottleneck 1x1s


def test_memory_efficient_variant_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = build_classifier("densenet-bc-22-8", num_classes=10)
    efficient = build_classifier("densenet-bc-22-8", num_classes=10, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    grads = []
    for m in (plain, efficient):
        torch.nn.functional.cross_entropy(m(x), y).backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bad_depth_and_arch():
    with pytest.raises(ValueError, match="6n\\+4"):
        build_classifier("densenet-bc-22-8", depth=23)
    with pytest.raises(ValueError, match="unknown arch"):
        build_classifier("resnet-18")
