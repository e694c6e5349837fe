"""Alert events by e-mail through Django's mail backend; the channel's target is the one recipient."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from ..vocabulary import EVENT_KIND_WORDS as KIND_WORDS
from . import TransportError, notification_id



# A dam release notice's transitions (releases.models.ReleaseTransition.Kind).
RELEASE_KIND_WORDS = {
    "posted": ("発表", "posted"),
    "updated": ("放流量更新", "discharge updated"),
    "ended": ("終了", "ended"),
}


# A town's evacuation order's steps (orders.models.OrderEvent.Kind): the verbs Japanese towns use
# for 避難情報 (発令 / 解除), the order's own name coming from the level scheme with the document.
ORDER_KIND_WORDS = {
    "issued": ("発令", "issued"),
    "raised": ("引き上げ", "raised"),
    "lowered": ("引き下げ", "lowered"),
    "extended": ("対象地区変更", "districts changed"),
    "lifted": ("解除", "lifted"),
}


def order_subject_for(notification: dict) -> str:
    order, step = notification["order"], notification["order_event"]
    ja, en = ORDER_KIND_WORDS[step["kind"]]
    districts = step["district_names"]
    where_ja = "、".join(d["name_ja"] for d in districts[:3]) + (" ほか" if len(districts) > 3 else "")
    where_en = ", ".join(d["name_en"] for d in districts[:3]) + (" and more" if len(districts) > 3 else "")
    return (
        f"[Mizumori] {step['title_ja']} {ja} / {step['title_en']} {en}: "
        f"{order['municipality_name_ja']} {where_ja} / {order['municipality_name_en']} {where_en}"
    )


def order_body_for(notification: dict) -> str:
    order, step = notification["order"], notification["order_event"]
    ja, en = ORDER_KIND_WORDS[step["kind"]]
    lines = [
        f"{order['municipality_name_ja']} / {order['municipality_name_en']}",
        f"{step['title_ja']} {ja} / {step['title_en']} {en}",
        "対象地区 / Districts: " + ", ".join(f"{d['name_ja']} ({d['name_en']})" for d in step["district_names"]),
        f"時刻 / At: {step['at']}",
    ]
    if step["kind"] != "lifted":
        lines.append(f"{order['action_ja']} / {order['action_en']}")
        open_shelters = [s for s in order["shelters"] if s["status"] != "closed"]
        if open_shelters:
            lines.append("避難所 / Shelters: " + ", ".join(f"{s['name_ja']} ({s['name_en']}, {s['status']})" for s in open_shelters))
    if step["reason"]:
        lines += ["", step["reason"]]
    lines += [
        "",
        f"公開ページ / Public page: {order['page_url']}",
        f"本部 / HQ board: {order['board_url']}",
        f"CAP: {step['cap_url']}",
    ]
    return "\n".join(lines) + "\n"


def subject_for(notification: dict) -> str:
    if "order_event" in notification:
        return order_subject_for(notification)
    if "release_event" in notification:
        release = notification["release"]
        ja, en = RELEASE_KIND_WORDS[notification["release_event"]["kind"]]
        dam = release["dam"]
        return f"[Mizumori] 放流通知 {ja} / Dam release notice {en}: {dam['name_ja']} ({dam['code']})"
    if "digest" in notification:
        station = notification["alert"]["station"]
        count = notification["digest"]["count"]
        return f"[Mizumori] まとめ {count}件 / Digest of {count} updates: {station['name_ja']} ({station['code']})"
    alert, event = notification["alert"], notification["event"]
    station = alert["station"]
    ja, en = KIND_WORDS.get(event["kind"], (event["kind"], event["kind"]))
    # The level's gauge words come with the alert document (alerts.vocabulary): 「警戒レベル4相当」.
    name_ja, name_en = alert["level_name_ja"], alert["level_name_en"]
    if event["level"] != alert["level"]:
        name_ja, name_en = f"警戒レベル{event['level']}相当", f"Level {event['level']} equivalent"
    return f"[Mizumori] {name_ja} {ja} / {name_en} {en}: {station['name_ja']} ({station['code']})"


def release_body_for(notification: dict) -> str:
    release, transition = notification["release"], notification["release_event"]
    dam = release["dam"]
    discharge = transition["current_discharge"]
    lines = [
        f"{dam['name_ja']} / {dam['name_en']} ({dam['code']}, {release['municipality']})",
        f"放流区間 / Reach: {release['reach']}",
        f"対象地区 / Districts: {', '.join(release['districts']) or '-'}",
        f"計画放流量 / Planned discharge: {release['planned_discharge']:g} m³/s",
        f"現在の放流量 / Current discharge: {'-' if discharge is None else f'{discharge:g} m³/s'}",
        f"開始 / Start: {release['started_at']}",
        f"終了予定 / Planned end: {release['ends_at'] or '-'}",
    ]
    if transition["kind"] == "ended":
        lines.append(f"終了 / Ended: {release['ended_at'] or transition['at']}")
    else:
        lines.append(f"{release['advice_ja']} / {release['advice_en']}")
    if release["message"]:
        lines += ["", release["message"]]
    lines += ["", f"CAP: {release['cap_url']}"]
    return "\n".join(lines) + "\n"


def digest_body_for(notification: dict) -> str:
    """One line per update, oldest first, then the alert as it is now and where to look."""
    alert = notification["alert"]
    station = alert["station"]
    lines = [
        f"{station['name_ja']} / {station['name_en']} ({station['code']}, {station['municipality']})",
        f"この観測所の更新 {notification['digest']['count']}件をまとめてお知らせします(新しいアラートとレベル上昇はすぐに送信済み)。",
        f"{notification['digest']['count']} updates of this station, gathered (new alerts and escalations were sent at once).",
        "",
    ]
    for each in notification["notifications"]:
        event, unit = each["event"], each["alert"]["unit"]
        ja, en = KIND_WORDS.get(event["kind"], (event["kind"], event["kind"]))
        lines.append(
            f"{event['at']}  L{event['level']} {ja} / {en}  {each['alert']['rule']['name']}: {event['value']} {unit}"
        )
    lines += [
        "",
        f"現在 / Now: {alert['level_name_ja']} / {alert['level_name_en']} ({alert['state']})",
        "",
        f"観測所 / Station: {alert['station_page_url']}",
        f"アラート一覧 / Alert board (HQ): {alert['board_url']}",
    ]
    return "\n".join(lines) + "\n"


def body_for(notification: dict) -> str:
    if "order_event" in notification:
        return order_body_for(notification)
    if "release_event" in notification:
        return release_body_for(notification)
    if "digest" in notification:
        return digest_body_for(notification)
    alert, event = notification["alert"], notification["event"]
    station = alert["station"]
    lines = [
        f"{station['name_ja']} / {station['name_en']} ({station['code']}, {station['municipality']})",
        f"{alert['level_name_ja']} {alert.get('reached_ja') or ''} — {alert.get('action_ja') or ''}",
        f"{alert['level_name_en']} {alert.get('reached_en') or ''} — {alert.get('action_en') or ''}",
        f"{alert['rule']['name']}: {event['value']} {alert['unit']} at {event['observed_at'] or event['at']}",
    ]
    if alert.get("rate_of_rise_per_hour") is not None:
        lines.append(f"Rate of rise: {alert['rate_of_rise_per_hour']:+.2f} {station['unit']}/h")
    if alert.get("time_to_next_level_minutes") is not None:
        lines.append(
            f"Level {alert['next_level']} in about {alert['time_to_next_level_minutes']:.0f} min "
            f"(± {alert['time_to_next_level_uncertainty_minutes']:.0f} min) if the trend holds"
        )
    lines += [
        "",
        f"観測所 / Station: {alert['station_page_url']}",
        f"アラート一覧 / Alert board (HQ): {alert['board_url']}",
        f"CAP: {alert['cap_url']}",
    ]
    return "\n".join(lines) + "\n"


def send(channel, notification: dict, *, timeout: float | None = None) -> None:
    message = EmailMessage(
        subject=subject_for(notification),
        body=body_for(notification),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[channel.target],
        headers={"X-Mizumori-Event": notification_id(notification)},
    )
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        raise TransportError(f"recipient refused: {exc}", permanent=True) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(f"mail server: {exc}") from exc
