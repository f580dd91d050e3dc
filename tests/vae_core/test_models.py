from __future__ import annotations

import torch

from vae_core.config import ModelConfig
from vae_core.models import VAE, pick_device


def test_forward_shapes_follow_the_config(tiny_model_config, tiny_batch):
    model = VAE(tiny_model_config)
    out = model(tiny_batch)
    B, D = tiny_batch.shape[0], tiny_model_config.latent_dim
    assert out.decoded.shape == tiny_batch.shape
    assert out.mu.shape == out.logvar.shape == out.z.shape == (B, D)


def test_decode_image_is_in_unit_interval(tiny_model_config):
    model = VAE(tiny_model_config)
    images = model.decode_image(3 * torch.randn(7, tiny_model_config.latent_dim))
    assert images.shape == (7, *tiny_model_config.image_shape)
    assert images.min() >= 0 and images.max() <= 1


def test_reparameterize_is_mu_plus_sigma_eps():
    model = VAE(ModelConfig(latent_dim=3))
    mu, logvar = torch.tensor([[1.0, -2.0, 0.5]]), torch.log(torch.tensor([[4.0, 0.25, 1.0]]))
    torch.manual_seed(3)
    eps = torch.randn(1, 3)
    torch.manual_seed(3)
    z = model.reparameterize(mu, logvar)
    torch.testing.assert_close(z, mu + torch.tensor([[2.0, 0.5, 1.0]]) * eps)


def test_gradients_flow_through_the_sampled_z(tiny_model_config, tiny_batch):
    model = VAE(tiny_model_config)
    mu, logvar = model.encode(tiny_batch)
    mu.retain_grad()
    logvar.retain_grad()
    model.decode(model.reparameterize(mu, logvar)).sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_reconstruct_is_deterministic(tiny_model_config, tiny_batch):
    model = VAE(tiny_model_config)
    torch.testing.assert_close(model.reconstruct(tiny_batch), model.reconstruct(tiny_batch))


def test_pick_device_falls_back_to_cpu_without_cuda():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_device("cpu").type == "cpu"
