"""The course's exercises, by notebook: ``"03.2"`` is notebook 03, exercise 2.

The statements are in the notebooks; each entry here says what real state
proves the exercise done, gives hints (English msgids, translated in
``labkit/locale/pt_BR/fragments/course.po``) and names the containers it
creates (so ``reset("03.2")`` can start it again). Solutions are in
:mod:`labkit.course.solutions`.
"""
from __future__ import annotations

import os
from functools import partial as p

from . import checks as c
from .framework import Exercise, register

# ---------------------------------------------------------------- 00 comece aqui
register(Exercise(
    "00.1", "your first container",
    [p(c.container_exited, "primeiro", 0),
     p(c.container_has_file, "primeiro", "/ola.txt", "olá")],
    hints=[
        "Use labkit.run with the image \"busybox\" and name=\"primeiro\".",
        "Keep the container after it ends: pass remove=False.",
        "The command can be [\"sh\", \"-c\", \"echo olá > /ola.txt\"].",
    ],
    containers=["primeiro"],
))
register(Exercise(
    "00.2", "a container in the background",
    [p(c.container_running, "segundo-plano"),
     p(c.container_process_is, "segundo-plano", "sleep")],
    hints=[
        "detach=True returns at once and leaves the container running.",
        "Give it a command that lasts: [\"sleep\", \"600\"].",
    ],
    containers=["segundo-plano"],
))

# ---------------------------------------------------------------- 01 o que é um contêiner
register(Exercise(
    "01.1", "a container is a process",
    [p(c.container_running, "vigia"),
     p(c.container_process_is, "vigia", "top")],
    hints=[
        "Start busybox in the background (detach=True) with name=\"vigia\".",
        "Its command is [\"top\", \"-b\"]: the check looks, on the host, for a "
        "process called top with the container's PID.",
        "psutil.Process(container.pid).name() tells the name of that process.",
    ],
    containers=["vigia"],
))
register(Exercise(
    "01.2", "an application and a service",
    [p(c.container_running, "loja-app"),
     p(c.container_running, "loja-cache"),
     p(c.container_started_first, "loja-app", "loja-cache")],
    hints=[
        "Two calls to labkit.run with detach=True, one per container: "
        "\"loja-app\" first.",
        "Names: \"loja-app\" and \"loja-cache\"; any long command will do "
        "(sleep 600).",
    ],
    containers=["loja-app", "loja-cache"],
))
register(Exercise(
    "01.3", "disposable",
    [p(c.container_running, "loja-cache"),
     p(c.container_running, "loja-app"),
     p(c.container_started_after, "loja-app", "loja-cache")],
    hints=[
        "labkit.get(\"loja-app\") gives the container; look at its methods.",
        "A running container must be stopped or removed with force=True.",
        "Then create \"loja-app\" again, as in exercise 01.2.",
    ],
    containers=["loja-app", "loja-cache"],
))

# ---------------------------------------------------------------- 02 namespaces
register(Exercise(
    "02.1", "namespaces of its own",
    [p(c.container_running, "isolado"),
     p(c.container_namespaces_differ, "isolado", ["pid", "uts", "mnt", "ipc", "net"])],
    hints=[
        "Start busybox in the background with name=\"isolado\" and a long command.",
        "The check compares /proc/<PID>/ns/* of the container with the notebook's.",
    ],
    containers=["isolado"],
))
register(Exercise(
    "02.2", "a host name of its own",
    [p(c.container_running, "nomeado"),
     p(c.container_hostname_is, "nomeado", "minha-caixa")],
    hints=[
        "labkit.run has a hostname= parameter.",
        "The container must still be running when you check: detach=True and "
        "sleep 600.",
    ],
    containers=["nomeado"],
))
register(Exercise(
    "02.3", "the host's network",
    [p(c.container_running, "na-rede-do-host"),
     p(c.container_namespaces_shared, "na-rede-do-host", ["net"]),
     p(c.container_sees_host_network, "na-rede-do-host"),
     p(c.container_namespaces_differ, "na-rede-do-host", ["pid", "uts", "mnt", "ipc"])],
    hints=[
        "labkit.run has a network= parameter; its default is \"bridge\".",
        "network=\"host\" keeps the container in the host's network namespace; the "
        "other namespaces are still its own.",
        "From the host, /proc/<PID>/net/dev lists the interfaces the process sees.",
    ],
    containers=["na-rede-do-host"],
))

# ---------------------------------------------------------------- 03 cgroups
register(Exercise(
    "03.1", "half a core",
    [p(c.container_running, "meia-cpu"),
     p(c.cpu_quota_is, "meia-cpu", 0.5)],
    hints=[
        "The parameter is cpus= and it takes a number of cores.",
        "Half a core is cpus=0.5. Keep it running (detach=True).",
    ],
    containers=["meia-cpu"],
))
register(Exercise(
    "03.2", "a memory limit",
    [p(c.container_running, "pouca-memoria"),
     p(c.memory_limit_is, "pouca-memoria", "64m")],
    hints=[
        "The parameter is memory= and accepts sizes like \"64m\".",
        "If the container already exists with another limit, change it with "
        "labkit.get(name).update(memory=...).",
    ],
    containers=["pouca-memoria"],
))
register(Exercise(
    "03.3", "killed by the OOM killer",
    [p(c.container_exited, "guloso"),
     p(c.container_oom_killed, "guloso")],
    hints=[
        "Give the container a small limit (memory=\"32m\") and a command that "
        "keeps eating memory.",
        "tail /dev/zero never finds the end of a line, so it keeps everything "
        "it reads in memory.",
        "Keep the container after it dies: remove=False (or detach=True), then "
        "wait for it.",
    ],
    containers=["guloso"],
))
register(Exercise(
    "03.4", "few processes",
    [p(c.container_running, "poucos-pids"),
     p(c.pids_limit_is, "poucos-pids", 10)],
    hints=[
        "The parameter is pids_limit=.",
        "pids_limit=10 and a long command, in the background.",
    ],
    containers=["poucos-pids"],
))

# ---------------------------------------------------------------- 04 OverlayFS
register(Exercise(
    "04.1", "a new file lands in the upper layer",
    [p(c.container_running, "cow"),
     p(c.container_has_file, "cow", "/nota.txt", "meu")],
    hints=[
        "Start busybox in the background with name=\"cow\".",
        "container.exec([\"sh\", \"-c\", \"echo meu arquivo > /nota.txt\"]) runs a "
        "command inside it.",
        "Then look for nota.txt in container.upper_dir.",
    ],
    containers=["cow"],
))
register(Exercise(
    "04.2", "an image file, deleted",
    [p(c.container_running, "cow"),
     p(c.container_has_whiteout, "cow", "/etc/group")],
    hints=[
        "/etc/group comes from the image (a lower layer): deleting it cannot "
        "change the image.",
        "Run rm /etc/group inside \"cow\" with exec, then list upper_dir/etc.",
    ],
    containers=["cow"],
))
register(Exercise(
    "04.3", "copy-up of a changed file",
    [p(c.container_running, "cow"),
     p(c.container_file_extends_image, "cow", "/etc/passwd", "aluno:")],
    hints=[
        "Append a line to /etc/passwd inside \"cow\" (>> appends).",
        "For example: echo 'aluno:x:1000:1000::/home/aluno:/bin/sh' >> /etc/passwd",
        "The whole file is copied up to the upper directory before the change.",
    ],
    containers=["cow"],
))

# ---------------------------------------------------------------- 05 dados fora do contêiner
register(Exercise(
    "05.1", "data that survives a re-creation",
    [p(c.volume_has_file, "diario", "/nota.txt", "sobrevivi"),
     p(c.container_absent, "diario-1"),
     p(c.container_mounts_volume, "diario-2", "diario", "/dados"),
     p(c.container_command_mentions, "diario-2", "/dados/nota.txt"),
     p(c.container_exited, "diario-2", 0)],
    hints=[
        "volumes=[\"diario:/dados\"] mounts the volume \"diario\" at /dados; it is created "
        "the first time the name is used.",
        "diario-1 writes: [\"sh\", \"-c\", \"echo sobrevivi > /dados/nota.txt\"]; with "
        "remove=True (the default) it is removed when it ends.",
        "diario-2 reads with [\"cat\", \"/dados/nota.txt\"] and remove=False, on the same volume.",
    ],
    containers=["diario-1", "diario-2"],
    volumes=["diario"],
))
register(Exercise(
    "05.2", "a volume's folder on the host",
    [p(c.volume_has_file, "achado", "/achei.txt", "está aqui")],
    hints=[
        "labkit.volume(\"achado\") creates the volume and returns it.",
        "Its .mountpoint is the folder on the host: write the file there with Python, "
        "e.g. (v.mountpoint / \"achei.txt\").write_text(\"está aqui\").",
    ],
    volumes=["achado"],
))
register(Exercise(
    "05.3", "a read-only mount",
    [p(c.container_mounts_volume, "so-leitura", "diario", "/dados", True),
     p(c.container_failed, "so-leitura"),
     p(c.volume_lacks_file, "diario", "/proibido.txt")],
    hints=[
        "\":ro\" at the end of a volume makes it read-only: \"diario:/dados:ro\".",
        "The command tries to write: [\"touch\", \"/dados/proibido.txt\"]; keep the container "
        "with remove=False so the check can see its exit code.",
    ],
    containers=["so-leitura"],
    volumes=["diario"],
))

# ---------------------------------------------------------------- 06 vários contêineres
register(Exercise(
    "06.1", "two containers that find each other by name",
    [p(c.container_on_network, "ping-a", "exercicio"),
     p(c.container_on_network, "ping-b", "exercicio"),
     p(c.container_command_mentions, "ping-b", "ping-a"),
     p(c.container_exited, "ping-b", 0)],
    hints=[
        "labkit.network(\"exercicio\") creates the network; network=\"exercicio\" puts a "
        "container on it.",
        "ping-a only has to be there: [\"sleep\", \"600\"] with detach=True.",
        "ping-b runs [\"nslookup\", \"ping-a\"] with remove=False; exit code 0 means the name "
        "was found.",
    ],
    containers=["ping-a", "ping-b"],
    networks=["exercicio"],
))
register(Exercise(
    "06.2", "a restart policy that gives up",
    [p(c.restart_policy_is, "teimoso", "on-failure", 2),
     p(c.container_gave_up, "teimoso", 2),
     p(c.container_exited, "teimoso", 3)],
    hints=[
        "restart=\"on-failure:2\": restart after an exit code other than 0, at most 2 times.",
        "The command [\"sh\", \"-c\", \"exit 3\"] ends at once with code 3.",
        "Use detach=True: the engine restarts it in the background.",
    ],
    containers=["teimoso"],
))
register(Exercise(
    "06.3", "a published port",
    [p(c.container_running, "vitrine"),
     p(c.container_port_answers, "vitrine")],
    hints=[
        "busybox's web server: [\"httpd\", \"-f\", \"-p\", \"80\"] (-f: stay in the foreground).",
        "ports=[\"127.0.0.1:8089:80\"] publishes the container's port 80 on the host's "
        "127.0.0.1:8089; any free port works.",
    ],
    containers=["vitrine"],
))

# ---------------------------------------------------------------- 07 VM × contêiner
register(Exercise(
    "07.1", "the size of a VM, as limits",
    [p(c.container_running, "mini-vm"),
     p(c.memory_limit_is, "mini-vm", "256m"),
     p(c.cpu_quota_is, "mini-vm", 1)],
    hints=[
        "labkit.run takes memory= and cpus=, as in notebook 03.",
        "memory=\"256m\", cpus=1, a long command (sleep 600) and detach=True.",
        "Then compare labkit.get(\"mini-vm\").cgroup.stats()[\"memory_usage\"] with the VM's "
        "peak memory: a limit is not a reservation.",
    ],
    containers=["mini-vm"],
))
register(Exercise(
    "07.2", "whose kernel?",
    [p(c.container_exited, "qual-kernel", 0),
     p(c.container_has_file, "qual-kernel", "/kernel.txt", os.uname().release)],
    hints=[
        "uname -r prints the kernel's version; > writes it to a file, so the command needs "
        "sh -c.",
        "labkit.run(\"busybox\", [\"sh\", \"-c\", \"uname -r > /kernel.txt\"], "
        "name=\"qual-kernel\", remove=False)",
    ],
    containers=["qual-kernel"],
))

# ---------------------------------------------------------------- 08 por que usar
register(Exercise(
    "08.1", "back to version 1",
    [p(c.container_running, "loja"),
     p(c.container_image_is, "loja", "loja:v1")],
    hints=[
        "A rollback is running the old tag: the image loja:v1 is still in the store.",
        "labkit.run(\"loja:v1\", [\"sh\", \"/app.sh\", \"--servir\"], name=\"loja\", "
        "detach=True): with --servir the app keeps running.",
    ],
    containers=["loja"],
))
register(Exercise(
    "08.2", "a new version with commit",
    [p(c.image_exists, "editor:v2"),
     p(c.image_has_file, "editor:v2", "/versao.txt", "2")],
    hints=[
        "Start busybox in the background with name=\"editor\" and write /versao.txt inside "
        "it with exec.",
        "Only then labkit.commit(\"editor\", \"editor:v2\"): a commit keeps what the upper "
        "directory has at that moment.",
    ],
    containers=["editor"],
    images=["editor:v2"],
))
register(Exercise(
    "08.3", "two versions side by side",
    [p(c.container_running, "app-antigo"),
     p(c.container_running, "app-novo"),
     p(c.container_image_is, "app-antigo", "loja:v1"),
     p(c.container_image_is, "app-novo", "loja:v2")],
    hints=[
        "Two containers, each from its own tag, both in the background.",
        "\"app-antigo\" from loja:v1 and \"app-novo\" from loja:v2, each with the command "
        "[\"sh\", \"/app.sh\", \"--servir\"].",
    ],
    containers=["app-antigo", "app-novo"],
))
