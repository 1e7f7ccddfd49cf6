"""Step "calibration": frames at the static size from the run's validation LR images, a folder or built-ins."""

from __future__ import annotations

from engine.export.steps.context import ExportContext, Outcome, outcome


def run(ctx: ExportContext) -> Outcome:
    from engine.export.calibration import load_sources, make_frames

    height, width = ctx.size
    source, images = load_sources(ctx.calib, ctx.checkpoint)
    frames = make_frames(images, ctx.size, ctx.calib_frames, ctx.seed)
    ctx.figures["calibration"] = {"source": source, "images": len(images), "frames": len(frames),
                                  "frame_size": [height, width],
                                  "method": "random crops (upscaled to cover when small) and whole-image resizes"}
    ctx.made.update(images=images, frames=frames)
    return outcome(f"{len(frames)} frames of {height}x{width} from {len(images)} images ({source})",
                   frames=len(frames), images=len(images), source=source)
