"""Step "load": every check of the request, the network, its parameters and MACs; the output folder."""

from __future__ import annotations

from dataclasses import asdict

from engine.export.steps.context import ExportContext, Outcome, outcome


def run(ctx: ExportContext) -> Outcome:
    from engine.export.onnx_export import conv_macs
    from engine.export.pipeline import check_request, prepare_output
    from engine.srvgg import count_parameters

    net, arch = check_request(ctx.checkpoint, ctx.size, ctx.sim_size, ctx.quant, ctx.calib)
    params = count_parameters(net.state_dict())
    macs = conv_macs(net, ctx.size)
    if not ctx.output_prepared:
        prepare_output(ctx.out, ctx.force)
    height, width = ctx.size
    ctx.figures["model"] = {"arch": "SRVGGNetCompact", **asdict(arch), "label": arch.label, "parameters": params,
                            "input": [1, 3, height, width],
                            "output": [1, 3, height * arch.upscale, width * arch.upscale],
                            "macs_per_frame": macs, "gmacs_per_frame": round(macs / 1e9, 3)}
    ctx.made.update(net=net, arch=arch, params=params, macs=macs)
    return outcome(f"{arch.label}, {params:,} parameters, {macs / 1e9:.2f} GMAC per {height}x{width} frame",
                   parameters=params, macs_per_frame=macs, arch=arch.label)
