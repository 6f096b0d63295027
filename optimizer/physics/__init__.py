"""Physics: the device (backend), plate geometry and the image method, the truth scene (Sionna RT), the
differentiable plate surrogate, and truth statistics over targets."""
