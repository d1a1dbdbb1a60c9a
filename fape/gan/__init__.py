"""FaPE-GAN: a generator that redraws a face in a target pose, its discriminator, losses,
training loop and synthesis of balancing sets."""
