"""explorer: the Streamlit UI of the VAE Latent Explorer (reads runs, calls vae_core, draws)."""
