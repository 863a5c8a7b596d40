"""Images: RealNVP's multi-scale model of [H, W, C] images (config, model, data, training)."""
