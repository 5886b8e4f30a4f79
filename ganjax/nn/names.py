"""Names that networks and the training core share.

A module sows its hidden features for the losses that read them (feature
matching, Salimans et al. 2016, section 3.1; VAE-GAN's feature-space
reconstruction, Larsen et al. 2016) under :data:`FEATURES`, in the
``'intermediates'`` collection: ``self.sow('intermediates', FEATURES, h)``.
"""

FEATURES = "features"
"""The name a module sows its hidden features under, in the ``'intermediates'`` collection."""
