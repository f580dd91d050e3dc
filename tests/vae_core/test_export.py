"""vae_core.export.onnx_decoder: any decoder with decode / decoded_to_image exports to ONNX
that computes the displayed image, for any batch size; unexportable decoders give one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

from vae_core.config import ModelConfig
from vae_core.export import ONNX_INPUT, ONNX_OUTPUT, ExportError, onnx_decoder
from vae_core.models import VAE


class Imported(nn.Module):
    """An imported model's wrapper: flat z, a (4, 2, 2) latent inside, GroupNorm + SiLU."""

    latent_dim = 16

    def __init__(self, extra: nn.Module | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, 8, 3, padding=1),
            nn.GroupNorm(4, 8),
            nn.SiLU(),
            nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1),  # 4x4
            nn.Upsample(scale_factor=2, mode="nearest"),  # 8x8
            extra or nn.Identity(),
        )

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(-1, 4, 2, 2))

    def decoded_to_image(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 0.5 + 0.5).clamp(0, 1)


class SpecialOp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.i0e(x)  # no ONNX symbolic for it


def _run_onnx(data: bytes, z: np.ndarray) -> np.ndarray:
    return ReferenceEvaluator(data).run(None, {ONNX_INPUT: z.astype(np.float32)})[0]


MODELS = {
    "mlp": lambda: VAE(ModelConfig(architecture="mlp", latent_dim=3, hidden_dim=16)),
    "conv-rgb": lambda: VAE(
        ModelConfig(
            image_shape=(3, 16, 16),
            architecture="conv",
            latent_dim=4,
            hidden_dim=16,
            conv_channels=(4, 8),
            likelihood="gaussian",
        )
    ),
    "imported": Imported,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_onnx_model_computes_the_displayed_image_for_any_batch(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    exported = onnx_decoder(model, version=3)
    D = exported.latent_dim
    for batch in (1, 5):  # traced at batch 2: the batch axis must stay free
        z = torch.randn(batch, D)
        with torch.no_grad():
            expected = model.decoded_to_image(model.decode(z)).numpy()
        np.testing.assert_allclose(_run_onnx(exported.onnx, z.numpy()), expected, atol=1e-5)
    assert exported.image_shape == expected.shape[1:]
    assert exported.version == "3"


def test_inputs_and_outputs_are_named_and_the_batch_axis_is_symbolic() -> None:
    import onnx

    graph = onnx.load_from_string(onnx_decoder(Imported()).onnx).graph
    (z,), (image,) = graph.input, graph.output
    assert (z.name, image.name) == (ONNX_INPUT, ONNX_OUTPUT)
    assert z.type.tensor_type.shape.dim[0].dim_param  # a name, not a fixed size
    assert [d.dim_value for d in z.type.tensor_type.shape.dim[1:]] == [16]


def test_the_signature_names_the_graph_and_the_version_the_weights() -> None:
    model = VAE(ModelConfig(latent_dim=2, hidden_dim=8))
    first = onnx_decoder(model)
    with torch.no_grad():
        model.decoder.out.bias.add_(1.0)  # a newer snapshot: same graph, other weights
    second = onnx_decoder(model)
    assert second.signature == first.signature and second.version != first.version
    other = onnx_decoder(VAE(ModelConfig(latent_dim=2, hidden_dim=9)))
    assert other.signature != first.signature


def test_export_leaves_a_training_model_in_training_mode() -> None:
    model = Imported().train()
    onnx_decoder(model)
    assert model.training


def test_a_decoder_without_an_onnx_op_gives_one_line() -> None:
    with pytest.raises(ExportError, match="special_i0e") as error:
        onnx_decoder(Imported(extra=SpecialOp()))
    assert "\n" not in str(error.value)


def test_a_decoder_that_does_not_give_images_is_refused() -> None:
    class Flat(Imported):
        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return super().decode(z).flatten(1)

    with pytest.raises(ExportError, match="not \\(B, 1 or 3, H, W\\)"):
        onnx_decoder(Flat())


def test_a_model_without_a_latent_size_needs_one() -> None:
    model = Imported()
    model.latent_dim = None
    with pytest.raises(ExportError, match="latent size is unknown"):
        onnx_decoder(model)
    assert onnx_decoder(model, latent_dim=16).latent_dim == 16
