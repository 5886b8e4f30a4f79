"""Neural style transfer (Gatys et al. 2016): not a GAN, kept apart; VGG-19 features and the optimisation."""
