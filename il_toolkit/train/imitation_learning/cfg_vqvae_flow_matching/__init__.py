"""``cfg_vqvae_flow_matching_trainer_kot``: classifier-free guidance on a VQ-VAE code, with K-OT."""
