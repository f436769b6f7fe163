"""RASA post-training: Removal of Absolute Spatial Attributes (Franca, arXiv 2507.14137, §3.3, supplement B).

``head`` (official head layout, sequential plane removal, folding), ``config`` (typed presets), ``features``
(images, training views, frozen-backbone patch tokens), ``train`` (the rounds loop), ``diagnostics`` (fresh
position probe, cluster-position entropy), ``downstream`` (k-NN, Hummingbird before / after), ``export``
(head files, folded backbone), ``plots``, ``pipeline`` (a whole run and its report) and ``cli``
(``franca rasa``). Modules are imported explicitly; importing the package loads nothing heavy.
"""
