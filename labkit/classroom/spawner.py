"""The class's JupyterHub spawner: LocalProcessSpawner (the hub runs as root and becomes each
student) plus cgroup placement. Imported by the generated ``jupyterhub_config.py``, never by
labkit itself (JupyterHub is the optional extra ``classroom``)."""
from __future__ import annotations

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode

from .placement import leaf_procs, place
from .state import ETC


class ClassroomSpawner(LocalProcessSpawner):
    """Each student's server starts in ``<parent>/<user>/jupyter``, under the student's caps."""

    classroom_etc = Unicode(ETC, config=True,
                            help="Directory of classroom.json (labkit classroom setup --etc)")

    def make_preexec_fn(self, name):
        drop = super().make_preexec_fn(name)
        procs = leaf_procs(name, self.classroom_etc)  # read in the hub, before the fork

        def preexec() -> None:
            place(procs)   # still root here
            drop()         # setgid/setuid to the student, cd home

        return preexec
