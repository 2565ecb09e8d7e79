"""The dashboard's words in Thai (the default) and English."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("th", "en")
DEFAULT_LANGUAGE = "th"

TEXT: dict[str, tuple[str, str]] = {
    # (Thai, English)
    "app": ("Growth Engine แดชบอร์ด", "Growth Engine dashboard"),
    "overview": ("ภาพรวม", "Overview"),
    "pipeline": ("ไปป์ไลน์ (ความล่าช้าของแต่ละขั้น)", "Pipeline (lag per stage)"),
    "stage": ("ขั้น", "Stage"),
    "events_behind": ("อีเวนต์ที่ยังไม่ได้ประมวลผล", "Events behind"),
    "seconds_behind": ("ล่าช้า (วินาที)", "Seconds behind"),
    "workers": ("เวิร์กเกอร์", "Workers"),
    "segments": ("กลุ่มผู้ใช้", "Segments"),
    "flows": ("โฟลว์", "Flows"),
    "messages": ("ข้อความ", "Messages"),
    "experiments": ("การทดลอง", "Experiments"),
    "send_times": ("เวลาที่เปิดอ่าน", "Send times"),
    "logout": ("ออกจากระบบ", "Log out"),
    "login": ("เข้าสู่ระบบ", "Log in"),
    "admin_key": ("คีย์ผู้ดูแล (admin API key)", "Admin API key"),
    "login_failed": ("คีย์ไม่ถูกต้อง หรือไม่ใช่คีย์ผู้ดูแล", "That key is unknown or is not the admin key"),
    "login_throttled": ("ลองผิดหลายครั้งเกินไป กรุณารอสักครู่แล้วลองใหม่",
                        "Too many failed attempts; wait a few minutes and try again"),
    "login_hint": ("ใส่คีย์ผู้ดูแลที่ growth serve แสดงตอนเริ่มครั้งแรก (หรือ GROWTH_API_KEY)",
                   "Enter the admin key growth serve printed at its first start (or GROWTH_API_KEY)"),
    "from": ("ตั้งแต่", "From"),
    "to": ("ถึง", "To"),
    "flow": ("โฟลว์", "Flow"),
    "all_flows": ("ทุกโฟลว์", "All flows"),
    "show": ("แสดง", "Show"),
    "metric": ("ตัวชี้วัด", "Metric"),
    "value": ("ค่า", "Value"),
    "target": ("เกณฑ์ที่ดี", "Good benchmark"),
    "delivery_rate": ("อัตราการส่งถึง", "Delivery rate"),
    "open_rate": ("อัตราการเปิด", "Open rate"),
    "push_open_rate": ("อัตราการเปิด (พุช)", "Open rate (push)"),
    "email_open_rate": ("อัตราการเปิด (อีเมล)", "Open rate (email)"),
    "ctr": ("อัตราการคลิก (CTR)", "Click-through rate"),
    "conversion_rate": ("อัตราการซื้อ (Conversion)", "Conversion rate"),
    "control_conversion_rate": ("อัตราการซื้อของกลุ่มควบคุม", "Control conversion"),
    "uplift": ("ส่วนต่างเทียบกลุ่มควบคุม (Uplift)", "Uplift over control"),
    "unsubscribe_rate": ("อัตราการยกเลิกรับข่าวสาร", "Unsubscribe rate"),
    "decided": ("ตัดสินใจส่ง", "Decided"),
    "sent": ("ส่งออก", "Sent"),
    "delivered": ("ถึงผู้รับ", "Delivered"),
    "opened": ("เปิด", "Opened"),
    "clicked": ("คลิก", "Clicked"),
    "converted": ("ซื้อ", "Converted"),
    "failed": ("ล้มเหลว", "Failed"),
    "suppressed": ("ระงับ", "Suppressed"),
    "scheduled": ("รอส่ง / เลื่อน", "Scheduled / held"),
    "cancelled": ("ยกเลิก", "Cancelled"),
    "control": ("กลุ่มควบคุม", "Control"),
    "unsubscribed": ("ยกเลิกรับ", "Unsubscribed"),
    "by_flow": ("แยกตามโฟลว์", "By flow"),
    "by_channel": ("แยกตามช่องทาง", "By channel"),
    "by_day": ("รายวัน", "By day"),
    "why_not_sent": ("เหตุผลที่ระงับ เลื่อน หรือไม่ได้ส่ง", "Why messages were held, moved or not sent"),
    "status": ("สถานะ", "Status"),
    "reason": ("เหตุผล", "Reason"),
    "count": ("จำนวน", "Count"),
    "channel": ("ช่องทาง", "Channel"),
    "step": ("ขั้นตอน", "Step"),
    "variant": ("เวอร์ชัน", "Variant"),
    "segment": ("กลุ่ม", "Segment"),
    "size_now": ("ขนาดตอนนี้", "Size now"),
    "refresh": ("รอบอัปเดต", "Refresh"),
    "size_over_time": ("ขนาดกลุ่มตามเวลา", "Segment sizes over time"),
    "snapshot_now": ("นับขนาดใหม่ตอนนี้", "Count again now"),
    "taken_at": ("ขนาดนับจากสมาชิกจริง ณ เวลา", "Sizes counted from the memberships at"),
    "runs_waiting": ("รันที่รอทำขั้นนี้", "Runs waiting for this step"),
    "runs_total": ("รันทั้งหมด", "Runs in total"),
    "active": ("กำลังทำงาน", "Active"),
    "completed": ("จบครบ", "Completed"),
    "exited": ("ออกก่อนจบ", "Exited"),
    "user": ("ผู้ใช้", "User"),
    "any": ("ทั้งหมด", "Any"),
    "filter": ("กรอง", "Filter"),
    "older": ("เก่ากว่า →", "Older →"),
    "why": ("ทำไม", "Why"),
    "scheduled_at": ("กำหนดส่ง", "Scheduled"),
    "sent_at": ("ส่งเมื่อ", "Sent at"),
    "content": ("เนื้อหา", "Content"),
    "no_messages": ("ไม่มีข้อความที่ตรงกับตัวกรอง", "No message matches these filters"),
    "verdict": ("ผลการทดลอง", "Verdict"),
    "verdict_pending": ("รอผลจากระบบทดลอง (experiment engine)", "Awaiting the experiment engine"),
    "experiments_note": ("ตัวเลขของแต่ละเวอร์ชันมาจากข้อความที่ส่งจริง ช่วงความเชื่อมั่น 95% (Wilson)",
                         "Each variant's figures come from the messages sent; 95 % Wilson intervals"),
    "no_experiments": ("ยังไม่มีขั้นตอนที่มีหลายเวอร์ชัน", "No step has variants yet"),
    "heatmap_title": ("การเปิดอ่านตามวันและชั่วโมง (เวลาท้องถิ่น)", "Opens by weekday and hour (local time)"),
    "opens": ("การเปิด", "Opens"),
    "all_channels": ("ทุกช่องทาง", "All channels"),
    "weekdays": ("จันทร์,อังคาร,พุธ,พฤหัสบดี,ศุกร์,เสาร์,อาทิตย์", "Mon,Tue,Wed,Thu,Fri,Sat,Sun"),
    "ok": ("ผ่าน", "OK"),
    "miss": ("ต่ำกว่าเกณฑ์", "Below benchmark"),
    "no_data": ("ยังไม่มีข้อมูล", "No data yet"),
    "attribution": ("ช่วงเวลานับการซื้อ: {days} วันหลังส่ง การซื้อแต่ละครั้งนับให้ข้อความเดียว คือข้อความล่าสุดก่อนซื้อ "
                    "(last touch)",
                    "Attribution window: {days} days after a send; each purchase is credited once, to the last "
                    "message before it (last touch)"),
    "confirmed_delivery_rate": ("อัตราที่ยืนยันว่าถึงผู้รับ", "Confirmed delivery rate"),
    "revenue_per_message": ("ยอดขายต่อข้อความ", "Revenue per message"),
    "revenue": ("ยอดขายที่นับให้ (GMV, บาท)", "Attributed revenue (GMV, ฿)"),
    "revenue_uplift": ("ยอดขายต่อข้อความเทียบกลุ่มควบคุม", "Revenue uplift per message"),
    "purchases": ("การซื้อที่นับให้", "Attributed purchases"),
    "scheduled_now": ("รอส่ง / เลื่อน (ตอนนี้)", "Scheduled / held (now)"),
    "definitions": ("นิยามของตัวเลข", "What each figure means"),
    "times_in": ("เวลาแสดงตามเขตเวลา", "Times shown in"),
    "step_send": ("ส่ง", "send"),
    "step_wait": ("รอ", "wait"),
    "step_action": ("ดำเนินการ", "action"),
    "step_branch": ("แยกทาง", "branch"),
    "reason.consent": ("ไม่ได้รับความยินยอม", "no consent"),
    "reason.quiet_hours": ("ช่วงเวลาห้ามรบกวน", "quiet hours"),
    "reason.frequency_cap": ("เกินจำนวนส่งสูงสุด", "frequency cap"),
    "reason.holdout": ("กลุ่มควบคุม (ตั้งใจไม่ส่ง)", "control group (held back)"),
    "reason.channel_score": ("ย้ายช่องทางตามคะแนน", "moved by channel score"),
    "reason.send_time": ("เลื่อนไปเวลาที่เหมาะสม", "moved to the best time"),
    "reason.no_address": ("ไม่มีที่อยู่ติดต่อ", "no address"),
    "reason.expired": ("หมดอายุก่อนส่ง", "expired before sending"),
    "reason.provider_error": ("ผู้ให้บริการปฏิเสธ", "provider refused"),
    "reason.render_error": ("สร้างข้อความไม่สำเร็จ", "could not render"),
    "reason.flow_exit": ("ออกจากโฟลว์ก่อนส่ง", "left the flow first"),
    "reason.due_later": ("ยังไม่ถึงเวลาส่ง", "due later"),
    "channel.push": ("พุช", "push"),
    "channel.email": ("อีเมล", "email"),
    "channel.sms": ("SMS", "SMS"),
    "channel.in_app": ("ในแอป", "in-app"),
    "channel.ads": ("โฆษณา (audience)", "ads audience"),
    "kind.marketing": ("การตลาด", "marketing"),
    "kind.transactional": ("ธุรกรรม", "transactional"),
    "refresh.realtime": ("ทันที", "real time"),
    "refresh.hourly": ("ทุกชั่วโมง", "hourly"),
    "refresh.daily": ("ทุกวัน (02:00)", "daily (02:00)"),
    "verdict.running": ("กำลังทดลอง", "running"),
    "verdict.winner": ("ได้ผู้ชนะ", "winner"),
    "verdict.no_difference": ("ไม่ต่างกัน", "no difference"),
    "verdict.pending": ("รอผล", "pending"),
    "timezone": ("เขตเวลา", "Time zone"),
    "totals": ("ยอดรวม", "Totals"),
    "funnel": ("ช่องทางการแปลง (funnel)", "Funnel"),
    "interval": ("ช่วง 95%", "95 % interval"),
    "language": ("ภาษา", "Language"),
}


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)`` in the language (the key itself when there is no text for it; for ``prefix.code``
    keys, the code)."""
    index = 1 if lang == "en" else 0

    def t(key: str, **values: object) -> str:
        pair = TEXT.get(key)
        # A code without words of its own ("reason.some_rule") shows as the code.
        text = pair[index] if pair else key.partition(".")[2] or key
        return text.format(**values) if values else text

    return t


def pick_language(query: str | None, cookie: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE
