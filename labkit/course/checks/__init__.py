"""Checks that look at the real state of the machine, never at printed text.

Each helper returns a :class:`~labkit.course.verdict.Verdict`. Two kinds:

- pure helpers that read files (an overlay upper directory, ``/proc``,
  ``/proc/self/mountinfo``) given as arguments, so unit tests can point them
  at a temporary directory;
- helpers that ask labkit's API about a container or an image. They import
  labkit lazily, so importing this module costs nothing and needs no engine.
"""
from __future__ import annotations

from .access import api_module, container_stats, container_status, find_container, parse_size
from .containers import (
    compare_cpus, compare_memory, container_absent, container_exists, container_exited,
    container_oom_killed, container_process_is, container_running, container_started_after,
    container_started_first, cpu_quota_is, exit_code_is, memory_limit_is, pids_limit_is,
    process_is, started_after, started_first, status_is, status_word,
    container_failed)
from .files import (
    container_file_extends_image, container_has_file, container_has_whiteout,
    container_lower_dirs, container_upper_dir, is_whiteout_stat, mount_fstype, overlay_mounted,
    upper_extends_lower, upper_has_file, upper_has_opaque_dir, upper_has_whiteout)
from .namespaces import (
    compare_hostname, container_hostname_is, container_namespaces_differ,
    container_namespaces_shared, container_only_loopback, container_sees_host_network,
    namespace_link, namespaces_differ, namespaces_shared, net_interfaces, only_loopback,
    same_interfaces_as_host)
from .images import (
    container_image_is, image_exists, image_has_file, image_id_is, image_in, ref_in)
from .namespaces import NAMESPACES
from .containers import PAGE
from .volumes import (
    container_mounts_volume, dir_has_file, file_in_dir, find_volume, mount_of, mounts_volume,
    volume_has_file, volume_lacks_file)
from .networks import (
    command_of, container_command_mentions, container_gave_up, container_on_network,
    container_port_answers, http_answers, on_network, published_ports, restart_policy_is,
    restart_policy_matches)
