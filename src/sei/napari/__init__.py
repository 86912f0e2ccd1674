"""The napari plugin of ``sei`` (``pip install "sei[napari]"``, then ``napari``): make or load a PSF, train on image
layers, restore a layer, and a blurred sample to try it on.

The plugin calls the library functions the command line calls (:func:`sei.physics.psf.psf_with_sampling`,
:func:`sei.training.run.train`, :func:`sei.inference.restoration.restore`), on layers written to TIFF files in their
own dtype, so that a layer restored in the viewer is the file ``sei restore`` writes. Its modules:

- :mod:`sei.napari.layers`: layers to and from the files the library reads and writes (no Qt);
- :mod:`sei.napari.jobs`: the work each widget starts, run in a worker thread (no Qt);
- :mod:`sei.napari.sample_data`: the blurred examples of napari's sample menu;
- :mod:`sei.napari.widgets`: the dock widget (PSF, Train and Restore tabs).

The manifest is ``napari.yaml`` beside this module (the ``napari.manifest`` entry point). Nothing else in ``sei``
imports this package, and importing it imports neither napari nor Qt.
"""
