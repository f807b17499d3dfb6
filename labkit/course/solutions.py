"""Solutions of the exercises, kept apart from the notebooks.

A notebook shows one only when the learner asks: ``solution("03.1")``. Each is
Python a learner can paste in a cell (``labkit`` already imported).
"""
from __future__ import annotations

SOLUTIONS: dict[str, str] = {
    "00.1": """
resultado = labkit.run("busybox", ["sh", "-c", "echo olá > /ola.txt"],
                       name="primeiro", remove=False)
resultado.exit_code   # 0: terminou bem, e o contêiner ficou guardado
""",
    "00.2": """
c = labkit.run("busybox", ["sleep", "600"], name="segundo-plano", detach=True)
c.status   # 'running'
""",
    "01.1": """
c = labkit.run("busybox", ["top", "-b"], name="vigia", detach=True)
import psutil
psutil.Process(c.pid).name()   # 'top': visto do hospedeiro, é um processo comum
""",
    "01.2": """
app = labkit.run("busybox", ["sleep", "600"], name="loja-app", detach=True)
cache = labkit.run("busybox", ["sleep", "600"], name="loja-cache", detach=True)
""",
    "01.3": """
labkit.get("loja-app").remove(force=True)
app = labkit.run("busybox", ["sleep", "600"], name="loja-app", detach=True)
""",
    "02.1": """
c = labkit.run("busybox", ["sleep", "600"], name="isolado", detach=True)
import os
for ns in ["pid", "uts", "mnt", "ipc", "net"]:
    print(ns, os.readlink(f"/proc/{c.pid}/ns/{ns}"), os.readlink(f"/proc/self/ns/{ns}"))
""",
    "02.2": """
c = labkit.run("busybox", ["sleep", "600"], name="nomeado", hostname="minha-caixa",
               detach=True)
c.exec(["hostname"]).stdout
""",
    "02.3": """
c = labkit.run("busybox", ["sleep", "600"], name="na-rede-do-host", network="host",
               detach=True)
print(open(f"/proc/{c.pid}/net/dev").read())   # as mesmas interfaces do hospedeiro
""",
    "03.1": """
c = labkit.run("busybox", ["sleep", "600"], name="meia-cpu", cpus=0.5, detach=True)
c.cgroup.stats()["cpu_quota_cores"]   # 0.5
""",
    "03.2": """
c = labkit.run("busybox", ["sleep", "600"], name="pouca-memoria", memory="64m",
               detach=True)
c.cgroup.stats()["memory_limit"]   # 67108864 bytes = 64 MiB
""",
    "03.3": """
c = labkit.run("busybox", ["tail", "/dev/zero"], name="guloso", memory="32m",
               detach=True)
c.wait()
c.oom_killed   # True
""",
    "03.4": """
c = labkit.run("busybox", ["sleep", "600"], name="poucos-pids", pids_limit=10,
               detach=True)
c.cgroup.stats()["pids_limit"]   # 10
""",
    "04.1": """
c = labkit.run("busybox", ["sleep", "600"], name="cow", detach=True)
c.exec(["sh", "-c", "echo meu arquivo > /nota.txt"])
sorted(p.name for p in c.upper_dir.iterdir())   # nota.txt está na camada de cima
""",
    "04.2": """
c = labkit.get("cow")
c.exec(["rm", "/etc/group"])
import os, stat
st = os.lstat(c.upper_dir / "etc" / "group")
stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)   # (True, 0, 0)
""",
    "04.3": """
c = labkit.get("cow")
c.exec(["sh", "-c", "echo 'aluno:x:1000:1000::/home/aluno:/bin/sh' >> /etc/passwd"])
print((c.upper_dir / "etc" / "passwd").read_text())   # o arquivo inteiro subiu
""",
    "05.1": """
labkit.run("busybox", ["sh", "-c", "echo sobrevivi > /dados/nota.txt"], name="diario-1",
           volumes=["diario:/dados"])          # remove=True: apagado ao terminar
labkit.run("busybox", ["cat", "/dados/nota.txt"], name="diario-2", volumes=["diario:/dados"],
           remove=False).stdout               # 'sobrevivi'
""",
    "05.2": """
v = labkit.volume("achado")
(v.mountpoint / "achei.txt").write_text("está aqui")
labkit.run("busybox", ["cat", "/v/achei.txt"], volumes=["achado:/v"]).stdout
""",
    "05.3": """
r = labkit.run("busybox", ["touch", "/dados/proibido.txt"], name="so-leitura",
               volumes=["diario:/dados:ro"], remove=False)
r.exit_code, r.stderr   # 1, 'touch: /dados/proibido.txt: Read-only file system'
""",
    "06.1": """
labkit.network("exercicio")
labkit.run("busybox", ["sleep", "600"], name="ping-a", network="exercicio", detach=True)
labkit.run("busybox", ["nslookup", "ping-a"], name="ping-b", network="exercicio",
           remove=False).stdout
""",
    "06.2": """
c = labkit.run("busybox", ["sh", "-c", "exit 3"], name="teimoso", restart="on-failure:2",
               detach=True)
""",
    "06.3": """
c = labkit.run("busybox", ["httpd", "-f", "-p", "80"], name="vitrine", detach=True,
               ports=["127.0.0.1:8089:80"])
c.ports
""",
    "07.1": """
c = labkit.run("busybox", ["sleep", "600"], name="mini-vm", memory="256m", cpus=1,
               detach=True)
s = c.cgroup.stats()
s["memory_limit"] // 2**20, s["memory_usage"] / 2**20   # (256, pouco mais de 0): um limite, não uma reserva
""",
    "07.2": """
r = labkit.run("busybox", ["sh", "-c", "uname -r > /kernel.txt"], name="qual-kernel",
               remove=False)
import os
(labkit.get("qual-kernel").upper_dir / "kernel.txt").read_text().strip() == os.uname().release   # True
""",
    "08.1": """
loja = labkit.run("loja:v1", ["sh", "/app.sh", "--servir"], name="loja", detach=True)
loja.logs()   # a mensagem da versão 1
""",
    "08.2": """
editor = labkit.run("busybox", ["sleep", "600"], name="editor", detach=True)
editor.exec(["sh", "-c", "echo 2 > /versao.txt"])
labkit.commit(editor, "editor:v2")
labkit.run("editor:v2", ["cat", "/versao.txt"]).stdout   # '2\\n'
""",
    "08.3": """
antigo = labkit.run("loja:v1", ["sh", "/app.sh", "--servir"], name="app-antigo", detach=True)
novo = labkit.run("loja:v2", ["sh", "/app.sh", "--servir"], name="app-novo", detach=True)
antigo.status, novo.status   # ('running', 'running')
""",
}
