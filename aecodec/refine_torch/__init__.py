"""The torch pieces that encoding uses: the model, relaxed rounding, a bundle's model, and the refinement.

``aecodec.effort.load_refiner`` is the runtime's only way in, imported lazily at effort above 0.
Training imports the model from here; nothing here imports ``aecodec.train`` or ``aecodec.codec``.
"""
