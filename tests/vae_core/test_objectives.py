from __future__ import annotations

import math

import pytest
import torch

from vae_core.config import ModelConfig
from vae_core.models import VAE
from vae_core.objectives import (
    ElboTerms,
    elbo_terms,
    gaussian_kl_per_dim,
    log_likelihood,
    log_likelihood_iwae,
)


def test_kl_is_zero_when_posterior_equals_prior():
    kl = gaussian_kl_per_dim(torch.zeros(2, 5), torch.zeros(2, 5))
    torch.testing.assert_close(kl, torch.zeros(2, 5))


def test_kl_matches_hand_computed_value():
    # KL(N(1, 4) || N(0, 1)) = 0.5 * (1 + 4 - 1 - ln 4) = 2 - ln 2
    kl = gaussian_kl_per_dim(torch.tensor([[1.0, 0.0]]), torch.log(torch.tensor([[4.0, 1.0]])))
    torch.testing.assert_close(kl, torch.tensor([[2 - math.log(2), 0.0]]))


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(8, 6), torch.randn(8, 6)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(0.0, 1.0)
    torch.testing.assert_close(
        gaussian_kl_per_dim(mu, logvar), torch.distributions.kl_divergence(q, p)
    )


def test_bernoulli_log_likelihood_matches_hand_computed_value():
    x = torch.tensor([[[[1.0, 0.0]]]])  # (1, 1, 1, 2)
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])  # p = 0.5, 0.75
    expected = math.log(0.5) + math.log(0.25)
    assert log_likelihood(x, logits, "bernoulli").item() == pytest.approx(expected, abs=1e-6)


def test_bernoulli_log_likelihood_is_finite_for_extreme_logits():
    x = torch.tensor([[[[1.0, 0.0]]]])
    ll = log_likelihood(x, torch.tensor([[[[-200.0, 200.0]]]]), "bernoulli")
    assert torch.isfinite(ll).all() and ll.item() == pytest.approx(-400.0)


def test_gaussian_log_likelihood_matches_torch_normal():
    x, mean = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4)
    log_scale = torch.tensor(-1.3)
    expected = torch.distributions.Normal(mean, log_scale.exp()).log_prob(x).flatten(1).sum(-1)
    torch.testing.assert_close(log_likelihood(x, mean, "gaussian", log_scale), expected)


def test_elbo_terms_combine_into_loss_with_beta(tiny_model_config, tiny_batch):
    model = VAE(tiny_model_config)
    torch.manual_seed(1)
    terms = elbo_terms(model, tiny_batch)
    B, D = tiny_batch.shape[0], tiny_model_config.latent_dim
    assert terms.recon.shape == (B,) and terms.kl_per_dim.shape == (B, D)
    torch.testing.assert_close(terms.elbo, -(terms.recon + terms.kl_per_dim.sum(-1)))
    torch.testing.assert_close(terms.loss(4.0), (terms.recon + 4.0 * terms.kl).mean())


def _trained_toy() -> tuple[VAE, torch.Tensor]:
    """A 2-d latent MLP VAE fitted for a few hundred steps on binary 4x4 patterns."""
    torch.manual_seed(0)
    patterns = (torch.rand(8, 1, 4, 4) > 0.5).float()
    data = patterns[torch.randint(0, 8, (512,))]
    model = VAE(ModelConfig(image_shape=(1, 4, 4), latent_dim=2, hidden_dim=32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = elbo_terms(model, data[torch.randint(0, 512, (64,))]).loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), patterns


def test_iwae_bound_sits_between_elbo_and_zero_on_a_trained_toy():
    model, x = _trained_toy()
    with torch.no_grad():
        elbo = torch.stack([elbo_terms(model, x).elbo for _ in range(200)]).mean(0)  # (B,)
    log_px = log_likelihood_iwae(model, x, k=2000, max_decode_batch=512)
    assert (log_px <= 0).all()
    assert (log_px >= elbo - 0.05).all()  # ELBO <= IWAE bound (up to Monte Carlo noise)
    assert (log_px - elbo).mean() > 0


def test_iwae_with_one_sample_is_an_unbiased_elbo():
    model, x = _trained_toy()
    many = x.repeat(2000, 1, 1, 1)  # (2000 * B, C, H, W)
    with torch.no_grad():
        elbo = elbo_terms(model, many).elbo.view(2000, -1).mean(0)  # analytic KL
        k1 = log_likelihood_iwae(model, many, k=1).view(2000, -1).mean(0)  # sampled KL
    torch.testing.assert_close(k1, elbo, atol=0.25, rtol=0)


def test_iwae_chunking_does_not_change_the_estimate():
    model, x = _trained_toy()
    torch.manual_seed(5)
    whole = log_likelihood_iwae(model, x[:2], k=300, max_decode_batch=300)
    torch.manual_seed(5)
    chunked = log_likelihood_iwae(model, x[:2], k=300, max_decode_batch=300)
    torch.testing.assert_close(whole, chunked)
    torch.manual_seed(5)
    small = log_likelihood_iwae(model, x[:2], k=300, max_decode_batch=7)
    torch.testing.assert_close(small, whole, atol=0.3, rtol=0)


def test_iwae_bound_rises_with_k_on_a_fixed_model():
    model, x = _trained_toy()
    torch.manual_seed(0)
    means = [log_likelihood_iwae(model, x.repeat(50, 1, 1, 1), k=k).mean() for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2] <= 0


def test_free_bits_take_the_gradient_away_from_dimensions_below_lambda():
    torch.manual_seed(0)
    mu = torch.tensor([[0.05, 2.0], [0.05, 2.0]], requires_grad=True)  # dim 0: KL ~ 0.001
    logvar = torch.zeros(2, 2)
    terms = ElboTerms(recon=torch.zeros(2), kl_per_dim=gaussian_kl_per_dim(mu, logvar))
    terms.loss(beta=1.0, free_bits=0.5).backward()
    assert mu.grad[:, 0].abs().max() == 0  # under lambda: no push towards the prior
    assert (mu.grad[:, 1] > 0).all()  # above lambda: the usual KL gradient
    plain = ElboTerms(recon=torch.ones(2), kl_per_dim=gaussian_kl_per_dim(mu, logvar))
    torch.testing.assert_close(plain.loss(3.0, free_bits=0.0), (1 + 3.0 * plain.kl).mean())
    assert plain.loss(1.0, free_bits=0.5) == 1 + 0.5 + plain.kl_per_dim[:, 1].mean()
