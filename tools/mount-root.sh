#!/bin/sh
# Run a command where / is a mount point, as pivot_root(2) requires.
#
# On a normal machine / is a mount point and the command just runs. Inside a
# plain chroot (a build box, the project's fresh-machine check) it is not, and
# no container runtime can pivot_root there (podman and runc fail the same way).
# Then the command runs in a private mount namespace whose root is a recursive
# bind mount of /: same files, same paths, and nothing mounted there is seen
# outside it.
set -eu
if mountpoint -q / 2>/dev/null; then
  exec "$@"
fi
echo "nota: / não é um ponto de montagem aqui (um chroot?); os testes rodam num namespace de montagem" \
     "privado cuja raiz é um bind de / (note: / is not a mount point; running in a private mount namespace)" >&2
# --propagation unchanged: a chroot's / cannot be made private (that is the whole problem);
# the bind is made private at once, and our own mounts then stay inside this namespace.
exec unshare --mount --propagation unchanged sh -c '
  root=$(mktemp -d /tmp/labkit-root.XXXXXX)
  mount --rbind / "$root"
  mount --make-rprivate "$root"
  exec chroot "$root" sh -c "cd \"\$0\" && exec \"\$@\"" "$PWD" "$@"
' sh "$@"
