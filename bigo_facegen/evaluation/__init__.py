"""Evaluation: the challenge protocol (first frame = reference) x a method (a model, `copy` or `warp`) x the dlib
judge, written as results.json / results.md / plots / contact sheets.

    from bigo_facegen import methods
    from bigo_facegen.evaluation import protocol, report
    evaluation = protocol.evaluate("../shared/data/real_faces/dev", {"warp": methods.load("warp")})
    report.write_report(evaluation, "runs/eval_warp")
"""
