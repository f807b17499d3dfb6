"""``labkit build``: a Dockerfile becomes an OCI image in the store, one layer per step.

How a step becomes a layer:

* ``COPY``/``ADD``: the files are written straight into a tar (sorted, owner
  0:0 unless ``--chown``, mtime 0) placed at the destination, which is
  resolved in the image so far (``/bin`` may be a link to ``usr/bin``).
  ``ADD`` of a local tarball unpacks it with the store's safe extractor first.
* ``RUN``: the command runs in a build container of the image so far
  (``labkit.run(..., remove=False)``); the container's OverlayFS upper
  directory *is* the change, and becomes the layer, with whiteouts written as
  ``.wh.`` entries and opaque directories as ``.wh..wh..opq``. The upper dir
  is moved into ``$LABKIT_HOME/layers/`` as the unpacked layer (no re-extraction).
* ``ENV``, ``CMD``, ``LABEL``... only change the image config (no layer).

The cache works like Docker's: a step's key is the hash of the previous key,
the instruction text (after ``ARG``/``ENV`` expansion) and, for ``COPY``/``ADD``,
the content of the copied files. A hit reuses the layer; a rebuild with
nothing changed writes no layer at all. The config's timestamps follow
Debian's convention: ``SOURCE_DATE_EPOCH`` when set, else the newest input
(the Dockerfile, the base image, the files ``COPY``/``ADD`` read); files in
layers keep mtime 0. So the same Dockerfile and context give the same image ID
every time, and ``labkit images`` shows a date that means something.

The package reads in the order a build happens: :mod:`.builder` is the driver
loop (stages, ``FROM``, the cache look-up, writing a layer, the result);
:mod:`.instructions` has one function per Dockerfile instruction, in the
order the Dockerfile reference lists them; :mod:`.copying` turns the sources
of ``COPY``/``ADD`` into tar entries; :mod:`.running` runs a ``RUN`` in a
build container; :mod:`.cache` computes the cache keys and keeps the cache;
:mod:`.state` is the image being built in one stage.
"""
from __future__ import annotations

from .builder import Builder, BuildResult, build, build_result
from .cache import BuildCache, chain_key
from .state import Progress, State, scratch_config

__all__ = ["BuildCache", "BuildResult", "Builder", "Progress", "State", "build", "build_result",
           "chain_key", "scratch_config"]
