"""Draw the course's diagrams (``imgs/img_container_{1,2,3}.png``).

The figures are course material, like the notebook text, so their labels are
written in Brazilian Portuguese here rather than through gettext.

The output is deterministic: a fixed font (DejaVu Sans, shipped with
matplotlib), a fixed size and resolution, and no PNG metadata (no
"Software" stamp), so running the script again gives byte-identical files.
``tests/unit/test_diagrams.py`` checks that.

Usage: ``python tools/draw_diagrams.py [--out DIR]`` (default: ``imgs/``).
Each figure is 9 in wide at 150 dpi (1350 px); shown at notebook width
(about 900 px) the smallest text is still about 14 px high.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WIDTH_IN = 9.0
DPI = 150

# Okabe-Ito palette (readable by people with colour-vision deficiency), with
# light tints for fills so that dark text stays readable on top of them.
BLUE, BLUE_L = "#0072B2", "#CFE3F3"
ORANGE, ORANGE_L = "#C97F00", "#FBE3B5"
GREEN, GREEN_L = "#007A5A", "#C7EBDD"
PURPLE, PURPLE_L = "#A0507F", "#EED5E4"
RED = "#C0392B"
GREY, GREY_L = "#6B6B6B", "#E6E6E6"
DARK = "#222222"
KERNEL, KERNEL_L = "#3D3D6B", "#D9D9EC"
INFRA_L = "#D8D2C4"


def _setup() -> None:
    plt.rcParams.update(
        {
            "font.family": "DejaVu Sans",
            "font.size": 12,
            "svg.hashsalt": "labkit",
            "path.simplify": True,
        }
    )


def _canvas(height_in: float, xmax: float = 100.0):
    fig = plt.figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ymax = xmax * height_in / WIDTH_IN
    ax.set_xlim(0, xmax)
    ax.set_ylim(0, ymax)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax, ymax


def _box(ax, x, y, w, h, text="", *, fc="white", ec=DARK, lw=1.5, fs=12,
         color=DARK, weight="normal", ls="-", round_=0.8, alpha=1.0, z=2):
    patch = FancyBboxPatch(
        (x, y), w, h,
        boxstyle=f"round,pad=0,rounding_size={round_}",
        fc=fc, ec=ec, lw=lw, ls=ls, alpha=alpha, zorder=z,
    )
    ax.add_patch(patch)
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center",
                fontsize=fs, color=color, weight=weight, zorder=z + 1,
                linespacing=1.25)
    return patch


def _arrow(ax, start, end, *, color=DARK, lw=2.0, ls="-", style="-|>", z=4,
           rad=0.0):
    ax.add_patch(FancyArrowPatch(
        start, end, arrowstyle=style, mutation_scale=18, color=color, lw=lw,
        ls=ls, zorder=z, connectionstyle=f"arc3,rad={rad}",
        shrinkA=0, shrinkB=0,
    ))


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, facecolor="white")
    plt.close(fig)


# ---------------------------------------------------------------- figure 1
def draw_slices(path: Path) -> None:
    """A container is a slice of one shared kernel: CPU and memory ceilings, shared disk."""
    fig, ax, ymax = _canvas(5.7)
    ax.text(50, ymax - 3.2, "Um contêiner é uma fatia do mesmo hospedeiro",
            ha="center", va="center", fontsize=17, weight="bold", color=DARK)

    containers = [
        ("contêiner A\nweb", BLUE, BLUE_L),
        ("contêiner B\nbanco de dados", ORANGE, ORANGE_L),
        ("contêiner C\ncache", GREEN, GREEN_L),
    ]
    bar_x, bar_w, bar_h = 17, 79.5, 6.6
    # Container boxes across the top, each in its colour (the legend of the
    # slices below).
    top_y, top_h = ymax - 15.0, 8.5
    box_w, box_gap = 24.5, (bar_w - 3 * 24.5) / 2
    for i, (label, ec, fc) in enumerate(containers):
        _box(ax, bar_x + i * (box_w + box_gap), top_y, box_w, top_h, label,
             fc=fc, ec=ec, lw=2.2, fs=13, weight="bold")

    # Resource bars. CPU and memory: each container's cgroup limit, a ceiling
    # (not a reservation); grey is what no limit claims. Disk has no cgroup
    # slice: each container writes into its own upper directory on the host's
    # file system, and only a quota on that file system (or --storage-opt size
    # on xfs) would cap it, so the bar shows shared space, not slices.
    fills = [fc for _, _, fc in containers] + [GREY_L]
    edges = [ec for _, ec, _ in containers] + [GREY]
    rows = [
        ("CPU", "2 núcleos",
         [(0.25, "teto 0,5", 0), (0.50, "teto 1 núcleo", 1), (0.125, "0,25", 2),
          (0.125, "sem teto", 3)]),
        ("Memória", "4 GiB",
         [(0.125, "512 MiB", 0), (0.375, "teto 1,5 GiB", 1), (0.125, "512 MiB", 2),
          (0.375, "sem teto", 3)]),
        ("Disco", "sem fatia",
         [(0.26, "imagem (de todos)", None), (0.05, "A", 0), (0.14, "upper B", 1),
          (0.04, "C", 2), (0.51, "livre: de quem escrever", 3)]),
    ]
    y = top_y - 2.0
    for name, total, parts in rows:
        y -= bar_h + 2.0
        ax.text(bar_x - 1.5, y + bar_h / 2 + 1.3, name, ha="right", va="center",
                fontsize=14, weight="bold", color=DARK)
        ax.text(bar_x - 1.5, y + bar_h / 2 - 1.6, total, ha="right",
                va="center", fontsize=12, color=GREY)
        x = bar_x
        for frac, text, k in parts:
            w = frac * bar_w
            fc, ec = (PURPLE_L, PURPLE) if k is None else (fills[k], edges[k])
            ax.add_patch(Rectangle((x, y), w, bar_h, fc=fc, ec=ec,
                                   lw=2.0, zorder=2))
            if text:
                ax.text(x + w / 2, y + bar_h / 2, text, ha="center",
                        va="center", fontsize=12, zorder=3,
                        color=GREY if k == 3 else DARK)
            x += w

    # The one kernel under everything.
    ky, kh = 2.5, 7.5
    ax.text(50, (ky + kh + y) / 2,
            "cgroups põem tetos (não reservas) em CPU e memória; o disco só tem teto\n"
            "com uma cota no sistema de arquivos das pastas upper; namespaces separam a visão",
            ha="center", va="center", fontsize=12, color=KERNEL, style="italic",
            linespacing=1.3)
    _box(ax, 3.5, ky, 93, kh,
         "Kernel Linux do hospedeiro: um só, compartilhado por todos",
         fc=KERNEL_L, ec=KERNEL, lw=2.2, fs=14, weight="bold", color=KERNEL)
    _save(fig, path)


# ---------------------------------------------------------------- figure 2
def draw_services(path: Path) -> None:
    """Several containers, one kernel, data outside, a container recreated."""
    fig, ax, ymax = _canvas(5.5)
    ax.text(50, ymax - 3.2,
            "Aplicação e serviços em contêineres, dados fora deles",
            ha="center", va="center", fontsize=17, weight="bold", color=DARK)

    cy, ch, cw = ymax - 21.0, 13.5, 18.0
    xs = [2.0, 30.0, 55.0, 80.0]
    # Old app container: removed (dashed, grey, crossed out).
    _box(ax, xs[0], cy, cw, ch, "", fc="white", ec=GREY, lw=2.0, ls="--")
    ax.text(xs[0] + cw / 2, cy + ch - 3.0, "app (versão 1)", ha="center",
            va="center", fontsize=12.5, color=GREY, weight="bold")
    ax.text(xs[0] + cw / 2, cy + 5.5, "processo: python", ha="center",
            va="center", fontsize=12, color=GREY)
    ax.text(xs[0] + cw / 2, cy + 2.2, "✘ removido", ha="center", va="center",
            fontsize=13, color=RED, weight="bold")
    _arrow(ax, (xs[0] + cw + 0.8, cy + ch / 2 - 1.0),
           (xs[1] - 0.8, cy + ch / 2 - 1.0), color=RED, lw=2.4)
    ax.text((xs[0] + cw + xs[1]) / 2, cy + ch / 2 + 0.6, "recriado",
            ha="center", va="bottom", fontsize=12, color=RED, weight="bold")

    boxes = [
        (xs[1], "app (versão 2)", "processo: python", BLUE, BLUE_L),
        (xs[2], "banco de dados", "processo: postgres", ORANGE, ORANGE_L),
        (xs[3], "cache", "processo: redis", GREEN, GREEN_L),
    ]
    for x, title, proc, ec, fc in boxes:
        _box(ax, x, cy, cw, ch, "", fc=fc, ec=ec, lw=2.2)
        ax.text(x + cw / 2, cy + ch - 3.0, title, ha="center", va="center",
                fontsize=12.5, weight="bold", color=DARK)
        ax.text(x + cw / 2, cy + 5.5, proc, ha="center", va="center",
                fontsize=12, color=DARK)
        ax.text(x + cw / 2, cy + 2.2, "contêiner", ha="center", va="center",
                fontsize=12, color=ec, style="italic")

    # Shared kernel. The volume arrows pass behind it: the kernel does the
    # mount that connects a container to its volume.
    ky, kh = cy - 10.5, 7.0
    _box(ax, 2.0, ky, 96, kh, "", fc=KERNEL_L, ec=KERNEL, lw=2.2, z=6)
    ax.text(5, ky + kh / 2, "Kernel Linux\ncompartilhado", ha="left",
            va="center", fontsize=13, weight="bold", color=KERNEL, zorder=7)
    ax.text(xs[3] + cw / 2, ky + kh / 2, "um só para\ntodos", ha="center",
            va="center", fontsize=12, color=KERNEL, zorder=7)

    # Host disk with the volumes.
    dy, dh = 2.0, ky - 5.5
    _box(ax, 2.0, dy, 96, dh, "", fc="#F4F1EA", ec="#7A6A4F", lw=2.0)
    ax.text(xs[0] + cw / 2, dy + dh - 4.2,
            "Disco do\nhospedeiro:\nos dados\nficam aqui", ha="center",
            va="top", fontsize=13, weight="bold", color="#5A4A2F",
            linespacing=1.2)
    vy, vh = dy + 2.0, dh - 5.0
    vols = [
        (xs[1], "volume\napp-uploads\n\no app novo\nencontra os\ndados do antigo", BLUE),
        (xs[2], "volume\nbanco-dados\n\nsobrevive\nquando o banco\né recriado", ORANGE),
    ]
    for x, label, ec in vols:
        _box(ax, x, vy, cw, vh, label, fc="white", ec=ec, lw=2.0, fs=12)
        _arrow(ax, (x + cw / 2, cy - 0.3), (x + cw / 2, vy + vh + 0.3),
               color=ec, lw=2.6, style="<|-|>", z=5)
    ax.text(xs[3] + cw / 2, vy + vh / 2,
            "cache: sem\nvolume, dados\ndescartáveis", ha="center",
            va="center", fontsize=12, color=GREY)
    _save(fig, path)


# ---------------------------------------------------------------- figure 3
def draw_vm_vs_container(path: Path) -> None:
    """The VM stack beside the container stack."""
    fig, ax, ymax = _canvas(5.75)
    ax.text(50, ymax - 3.2, "Máquina virtual × contêiner", ha="center",
            va="center", fontsize=17, weight="bold", color=DARK)

    left, right, width = 3, 53, 44
    base, layer_h, gap = 2.0, 6.0, 0.8

    def stack_layer(x, level, text, fc, ec, fs=13):
        y = base + level * (layer_h + gap)
        _box(ax, x, y, width, layer_h, text, fc=fc, ec=ec, lw=1.8, fs=fs,
             round_=0.6)
        return y

    # VM side.
    stack_layer(left, 0, "Infraestrutura (a máquina física)", INFRA_L, "#7A6A4F")
    stack_layer(left, 1, "Sistema operacional hospedeiro", KERNEL_L, KERNEL)
    stack_layer(left, 2, "Hipervisor (cria as VMs)", PURPLE_L, PURPLE)
    col_gap = 2.0
    col_w = (width - 2 * col_gap) / 3
    colors = [(BLUE, BLUE_L), (ORANGE, ORANGE_L), (GREEN, GREEN_L)]
    for i, (ec, fc) in enumerate(colors):
        x = left + i * (col_w + col_gap)
        y3 = base + 3 * (layer_h + gap)
        _box(ax, x, y3, col_w, layer_h * 2 + gap, "SO\nconvidado\n(kernel\npróprio)",
             fc=KERNEL_L, ec=KERNEL, lw=1.5, fs=12, round_=0.6)
        y5 = base + 5 * (layer_h + gap)
        _box(ax, x, y5, col_w, layer_h, "bibliotecas", fc="white", ec=ec,
             lw=1.5, fs=12, round_=0.6)
        y6 = base + 6 * (layer_h + gap)
        _box(ax, x, y6, col_w, layer_h, f"App {'ABC'[i]}", fc=fc, ec=ec,
             lw=1.8, fs=13, weight="bold", round_=0.6)
    top_vm = base + 7 * (layer_h + gap)
    ax.text(left + width / 2, top_vm + 4.6, "Máquinas virtuais",
            ha="center", va="center", fontsize=15, weight="bold", color=PURPLE)
    ax.text(left + width / 2, top_vm + 1.8, "virtualizam o hardware",
            ha="center", va="center", fontsize=12, color=PURPLE, style="italic")

    # Container side.
    stack_layer(right, 0, "Infraestrutura (a máquina física)", INFRA_L, "#7A6A4F")
    stack_layer(right, 1, "Sistema operacional (um kernel Linux)", KERNEL_L,
                KERNEL)
    stack_layer(right, 2, "Motor de contêineres\n(labkit engine / Docker Engine)",
                PURPLE_L, PURPLE, fs=12)
    for i, (ec, fc) in enumerate(colors):
        x = right + i * (col_w + col_gap)
        y3 = base + 3 * (layer_h + gap)
        _box(ax, x, y3, col_w, layer_h, "bibliotecas", fc="white", ec=ec,
             lw=1.5, fs=12, round_=0.6)
        y4 = base + 4 * (layer_h + gap)
        _box(ax, x, y4, col_w, layer_h, f"App {'ABC'[i]}", fc=fc, ec=ec,
             lw=1.8, fs=13, weight="bold", round_=0.6)
        # The container boundary around its libraries and app.
        pad = 0.6
        _box(ax, x - pad, y3 - pad, col_w + 2 * pad,
             2 * layer_h + gap + 2 * pad, "", fc="none", ec=ec, lw=1.6,
             ls="--", round_=0.9, z=1)
    y5 = base + 5 * (layer_h + gap)
    ax.text(right + width / 2, y5 + 1.0, "3 contêineres", ha="center",
            va="center", fontsize=12, color=GREY, style="italic")
    ax.text(right + width / 2, top_vm + 4.6, "Contêineres", ha="center",
            va="center", fontsize=15, weight="bold", color=BLUE)
    ax.text(right + width / 2, top_vm + 1.8,
            "virtualizam o sistema operacional", ha="center", va="center",
            fontsize=12, color=BLUE, style="italic")
    # What the container side saves.
    ytxt = base + 6 * (layer_h + gap) + layer_h / 2
    ax.text(right + width / 2, ytxt,
            "sem hipervisor e sem SO convidado:\nmenos camadas, menos CPU e memória",
            ha="center", va="center", fontsize=12, color=DARK, linespacing=1.3)
    ax.plot([50, 50], [base, top_vm + 5.5], color=GREY_L, lw=1.5, zorder=0)
    _save(fig, path)


FIGURES = {
    "img_container_1.png": draw_slices,
    "img_container_2.png": draw_services,
    "img_container_3.png": draw_vm_vs_container,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "imgs",
                        help="output directory (default: imgs/)")
    args = parser.parse_args(argv)
    _setup()
    for name, draw in FIGURES.items():
        draw(args.out / name)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
