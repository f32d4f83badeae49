"""The checks that talk to the proctoring service: reachable, clock, upload, bandwidth.

``service`` asks ``GET /healthz``; ``clock`` compares the ``Date`` of that answer with
this computer's clock (warn above ``checks.clock_warn``, fail above
``checks.clock_fail``); ``upload`` sends ``checks.upload_test_kb`` of random bytes to
``POST /api/v1/probe`` and fails only when nothing gets through ("Cannot Upload Files");
``bandwidth`` weighs that upload's rate against the exam's recording rate and only ever
warns, as ProctorExam's bandwidth step does: below ``checks.bandwidth_margin`` times the
rate uploads may lag, below the rate itself recordings finish uploading after the exam.
Without a known service every one of them is skipped with the reason.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from lockdown.checks import needs
from lockdown.checks.base import CheckContext, CheckDefaults, CheckResult, Status
from lockdown.session import probe

#: the HTTP ``Date`` header counts whole seconds: the service's time is up to 1 s later
DATE_RESOLUTION_S: Final = 1.0


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _no_service(ctx: CheckContext) -> CheckResult | None:
    if ctx.service is None:
        return CheckResult(Status.SKIP, "check.service.none")
    return None


def _limit(ctx: CheckContext, check: CheckDefaults) -> float:
    limit = check.time_limit if check.time_limit is not None else ctx.settings["checks.time_limit"]
    return max(1.0, float(limit) - 1.0)  # answer before the runner gives up on us


class ServiceCheck(CheckDefaults):
    """Is the proctoring service there (``GET /healthz``)."""

    id = "service"
    title_id = "check.service.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        if (skipped := _no_service(ctx)) is not None:
            return skipped
        assert ctx.service is not None
        reply = probe.health(ctx.service.url, ctx.settings, timeout=_limit(ctx, self))
        ctx.shared["health"] = reply
        host = _host(ctx.service.url)
        details: dict[str, Any] = {"url": ctx.service.url, "status": reply.status}
        if not reply.ok:
            details["error"] = reply.error
            return CheckResult(
                Status.FAIL,
                "check.service.unreachable",
                {"host": host, "reason": reply.reason},
                "check.service.remedy",
                details=details,
            )
        details["version"] = reply.body.get("version")
        return CheckResult(
            Status.PASS,
            "check.service.ok",
            {"host": host},
            measured={"round_trip_ms": round(reply.elapsed * 1000, 1)},
            details=details,
        )


def clock_offset(reply: probe.Reply) -> float | None:
    """The service's time minus ours, seconds (None without a ``Date``).

    The service stamped its answer between our request and the answer's arrival: the
    middle of the two is our best guess of that moment, and the whole-second ``Date``
    is on average half a second behind the service's clock.
    """
    if reply.date is None:
        return None
    ours = (reply.sent + reply.received) / 2
    return reply.date.timestamp() + DATE_RESOLUTION_S / 2 - ours


class ClockCheck(CheckDefaults):
    """This computer's clock against the service's ``Date``."""

    id = "clock"
    title_id = "check.clock.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        if (skipped := _no_service(ctx)) is not None:
            return skipped
        reply = ctx.shared.get("health")
        if not isinstance(reply, probe.Reply) or reply.status is None:
            return CheckResult(Status.SKIP, "check.clock.no_answer")
        offset = clock_offset(reply)
        if offset is None:
            return CheckResult(Status.SKIP, "check.clock.no_date")
        warn = float(ctx.settings["checks.clock_warn"])
        fail = float(ctx.settings["checks.clock_fail"])
        measured = {"offset_s": round(offset, 2)}
        how = "behind" if offset > 0 else "ahead of"
        values = {"seconds": f"{abs(offset):.0f}", "how": how}
        details = {"service_date": reply.date.isoformat() if reply.date else None}
        if abs(offset) > fail:
            return CheckResult(
                Status.FAIL, "check.clock.off", values, "check.clock.remedy", measured, details
            )
        if abs(offset) > warn:
            return CheckResult(
                Status.WARN, "check.clock.off", values, "check.clock.remedy", measured, details
            )
        return CheckResult(Status.PASS, "check.clock.ok", values, None, measured, details)


class UploadCheck(CheckDefaults):
    """A real upload to the service's probe endpoint; fails only when nothing gets through
    (a service too busy to take the test, 429, is a warning: it did answer)."""

    id = "upload"
    title_id = "check.upload.title"
    time_limit = 60.0

    def run(self, ctx: CheckContext) -> CheckResult:
        if (skipped := _no_service(ctx)) is not None:
            return skipped
        assert ctx.service is not None
        if not ctx.proctored:
            return CheckResult(Status.SKIP, "check.upload.not_recorded")
        if not ctx.service.probe_token:
            return CheckResult(Status.SKIP, "check.upload.no_token")
        size = int(ctx.settings["checks.upload_test_kb"]) * 1024
        result = probe.probe(
            ctx.service.url,
            ctx.service.probe_token,
            ctx.settings,
            size=size,
            timeout=_limit(ctx, self),
        )
        reply = result.reply
        host = _host(ctx.service.url)
        details: dict[str, Any] = {"url": ctx.service.url, "status": reply.status, "bytes": size}
        if not reply.ok:
            details["error"] = reply.error
            if reply.status == 429:
                wait = f"{reply.retry_after:g}" if reply.retry_after is not None else "60"
                # the service answered: it is busy, not out of reach (a class behind one
                # address checking at once); the service step has shown it is reachable
                return CheckResult(
                    Status.WARN,
                    "check.upload.rate_limited",
                    {"seconds": wait},
                    "check.upload.rate_limited_remedy",
                    details=details,
                )
            return CheckResult(
                Status.FAIL,
                "check.upload.failed",
                {"reason": reply.reason, "host": host},
                "check.upload.remedy",
                details=details,
            )
        if not ctx.cancelled.is_set():
            ctx.shared["upload"] = result
        rate = result.rate_bps
        measured = {
            "bytes": size,
            "seconds": round(reply.elapsed, 3),
            "rate_kbps": round(rate / 1000, 1) if rate else None,
        }
        values = {"kb": f"{size // 1024}", "seconds": f"{reply.elapsed:.1f}"}
        return CheckResult(Status.PASS, "check.upload.ok", values, None, measured, details)


class BandwidthCheck(CheckDefaults):
    """The upload's rate against the recording rate: a warning only, never a failure."""

    id = "bandwidth"
    title_id = "check.bandwidth.title"
    blocking = False

    def run(self, ctx: CheckContext) -> CheckResult:
        if (skipped := _no_service(ctx)) is not None:
            return skipped
        if not ctx.proctored:
            return CheckResult(Status.SKIP, "check.upload.not_recorded")
        upload = ctx.shared.get("upload")
        if not isinstance(upload, probe.ProbeReply) or not upload.rate_bps:
            return CheckResult(Status.SKIP, "check.bandwidth.no_upload")
        rate_kbps = upload.rate_bps / 1000
        need_kbps = needs.recording_kbps(ctx.settings, ctx.streams)
        margin = float(ctx.settings["checks.bandwidth_margin"])
        measured = {
            "rate_kbps": round(rate_kbps, 1),
            "recording_kbps": round(need_kbps, 1),
            "ratio": round(rate_kbps / need_kbps, 2) if need_kbps else None,
        }
        values = {"rate": f"{rate_kbps:,.0f}", "need": f"{need_kbps:,.0f}", "margin": f"{margin:g}"}
        details = {
            "service_rate_bps": upload.service_rate_bps,
            "client_rate_bps": upload.client_rate_bps,
            "streams": list(ctx.streams),
        }
        if rate_kbps < need_kbps:
            return CheckResult(
                Status.WARN,
                "check.bandwidth.after_exam",
                values,
                "check.bandwidth.remedy",
                measured,
                details,
            )
        if rate_kbps < margin * need_kbps:
            return CheckResult(
                Status.WARN,
                "check.bandwidth.lag",
                values,
                "check.bandwidth.remedy",
                measured,
                details,
            )
        return CheckResult(Status.PASS, "check.bandwidth.ok", values, None, measured, details)
