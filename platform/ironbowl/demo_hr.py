"""The HR part of the demo world: published avatars, two hires, and the knowledge they answer from.

Everything goes through the services, as a person would do it in the console, except each avatar's
version 1: see `_demo_version`. Running it again changes nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import wave
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from django.conf import settings
from django.utils import timezone

from avatars import builds, catalog, consent, employments, knowledge, positions, uploads
from avatars.models import (
    Avatar,
    AvatarStatus,
    AvatarVersion,
    Consent,
    ConsentScope,
    Employment,
    EmploymentStatus,
    KnowledgeDocument,
    KnowledgeEntry,
    Position,
    UploadPurpose,
    Visibility,
)
from inference.pipelines import build as build_pipeline
from tenants import audit
from tenants.audit import Actor
from tenants.models import Membership, Organization
from tenants.roles import Role

VENDOR = "lumen-avatars"
HOSPITAL = "qinghe-hospital"
BUREAU = "lanxi-market-bureau"
CONSENT_YEARS = 3


@dataclasses.dataclass(frozen=True)
class DemoAvatar:
    name_zh: str
    name_en: str
    languages: tuple[str, ...]
    skills: tuple[str, ...]
    list_price: str
    description: str
    persona: str
    wardrobe: tuple[tuple[str, str], ...]
    subject: str  # the (fictional) person filmed
    colour: tuple[int, int, int]  # RGB of the portrait's background
    pitch_hz: float
    syllables_per_second: float


DEMO_AVATARS = (
    DemoAvatar(
        name_zh="林晓雯",
        name_en="Lin Xiaowen",
        languages=("zh-CN",),
        skills=("live_anchor", "presenter"),
        list_price="2680.00",
        description="普通话主播，亲切稳重，擅长健康科普和政策解读直播。"
        " A warm Mandarin anchor for health education and policy live streams.",
        persona="你是林晓雯，一位亲切、专业的普通话主播。说话简洁清楚，先讲结论再解释；"
        "不夸大、不承诺疗效，遇到不确定的问题建议观众咨询专业人员。",
        wardrobe=(("白色西装", "studio blazer, white"), ("浅蓝衬衫", "light-blue shirt")),
        subject="林晓雯 (Lin Xiaowen)",
        colour=(94, 146, 196),
        pitch_hz=212.0,
        syllables_per_second=4.3,
    ),
    DemoAvatar(
        name_zh="陈嘉欣",
        name_en="Chan Ka-yan",
        languages=("yue-HK",),
        skills=("live_commerce", "live_anchor", "service_desk"),
        list_price="2880.00",
        description="粤语主播，活泼热情，适合大湾区带货直播和门店导购。"
        " A lively Cantonese host for live commerce and in-store service.",
        persona="你係陳嘉欣，一位熱情嘅粵語主播。用粵語口語同觀眾傾偈，介紹產品要講清楚價錢同售後，"
        "唔好誇大功效。",
        wardrobe=(("红色连衣裙", "red dress"), ("休闲卫衣", "casual hoodie")),
        subject="陈嘉欣 (Chan Ka-yan)",
        colour=(196, 96, 84),
        pitch_hz=224.0,
        syllables_per_second=5.1,
    ),
    DemoAvatar(
        name_zh="艾玛·哈特",
        name_en="Emma Hart",
        languages=("en-US",),
        skills=("presenter", "teacher", "service_desk"),
        list_price="3200.00",
        description="英语主持人，适合国际化展会、英文课程和外籍人士服务。"
        " An American-English presenter for expos, courses and services for foreign residents.",
        persona="You are Emma Hart, a friendly presenter. Speak plain American English, keep "
        "answers short, and say so when a question needs a human expert.",
        wardrobe=(("Navy suit", "navy suit, conference"), ("Cardigan", "grey cardigan")),
        subject="Emma Hart",
        colour=(92, 160, 120),
        pitch_hz=198.0,
        syllables_per_second=4.6,
    ),
    DemoAvatar(
        name_zh="周明远",
        name_en="Ming Zhou",
        languages=("zh-CN", "en-US"),
        skills=("service_desk", "guide", "presenter"),
        list_price="3580.00",
        description="中英双语服务专员，耐心细致，适合政务大厅、热线和网页客服全天候值守。"
        " A patient bilingual (Mandarin and English) agent for service halls and 24/7 help desks.",
        persona="你是周明远，一位耐心的中英双语服务专员。用提问者使用的语言回答；"
        "只根据知识库回答，不确定时请对方拨打热线或到窗口咨询。"
        " Answer in the caller's language, only from the knowledge base.",
        wardrobe=(("深色西装", "dark suit"), ("工作马甲", "service-hall vest")),
        subject="周明远 (Zhou Mingyuan)",
        colour=(120, 110, 170),
        pitch_hz=118.0,
        syllables_per_second=4.0,
    ),
)


@dataclasses.dataclass(frozen=True)
class DemoHire:
    organization: str
    avatar: str  # name_en of a demo avatar
    title: str
    department: str
    duties: str
    required_languages: tuple[str, ...]
    required_skills: tuple[str, ...]
    seats: int
    persona: str
    voice: dict[str, Any]


DEMO_HIRES = (
    DemoHire(
        organization=HOSPITAL,
        avatar="Lin Xiaowen",
        title="Health live-stream anchor · 健康直播主播",
        department="Health education · 健康宣教科",
        duties="每周在健康直播间讲解常见病预防、用药常识和就医流程，回答观众的一般性问题。"
        " Hosts the weekly health-education live stream and answers viewers' general questions.",
        required_languages=("zh-CN",),
        required_skills=("live_anchor",),
        seats=1,
        persona="你是清河人民医院健康直播间的主播林晓雯。讲解健康科普知识，语气亲切；"
        "不做个人诊断、不推荐具体药品；观众描述急症时，提醒立即拨打120或到急诊就诊。",
        voice={"source": "avatar", "language": "zh-CN", "speed": 1.0},
    ),
    DemoHire(
        organization=BUREAU,
        avatar="Ming Zhou",
        title="24/7 service-desk agent · 全天候智能服务台",
        department="Government service hall · 政务服务大厅",
        duties="全天候在网页服务台和消费者热线回答登记注册、许可、投诉举报等常见问题。"
        " Answers questions on registration, licences, complaints and reports around the clock.",
        required_languages=("zh-CN", "en-US"),
        required_skills=("service_desk",),
        seats=2,
        persona="你是兰溪市场监管局的全天候服务专员周明远。用提问者的语言回答，依据知识库作答；"
        "知识库没有的问题，请对方拨打12315或在工作时间到政务服务大厅咨询。",
        voice={"source": "avatar", "language": "zh-CN", "speed": 0.95},
    ),
)

# --- Knowledge ------------------------------------------------------------------------------------

# The bureau's knowledge lives in a data file, with held-out paraphrases that measure how well
# conversations answer from it (tests/inference/pipelines/test_retrieval.py and the end-to-end
# conversation test ask them).
BUREAU_KNOWLEDGE = Path(__file__).parent / "demo_data" / "bureau_knowledge.json"

HOSPITAL_FAQ: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "outpatient",
        ("门诊几点开始看病？", "医院门诊时间是什么？"),
        "门诊时间为每天上午8:00–12:00、下午13:30–17:00；急诊24小时开放。节假日安排以医院公众号"
        "通知为准。",
    ),
    (
        "appointments",
        ("怎么预约挂号？", "可以在网上挂号吗？"),
        "可以通过医院公众号、自助机或门诊大厅窗口预约挂号，建议提前预约并按预约时间到诊。",
    ),
    (
        "live-room",
        ("直播间可以帮我看病吗？", "能在直播里问诊吗？"),
        "直播间只做健康科普，不能替代面诊，也不会给出个人诊断或用药建议。身体不适请到门诊就诊。",
    ),
    (
        "emergency",
        ("突然胸痛怎么办？", "家人晕倒了怎么办？"),
        "出现胸痛、呼吸困难、昏迷等急症，请立即拨打120，或尽快到最近医院的急诊就诊。",
    ),
)

HOSPITAL_GUIDE_TITLE = "健康直播间须知 · Live room guidelines"
HOSPITAL_GUIDE = """# 健康直播间须知

- 直播内容是健康科普，不能代替医生面诊。
- 不针对个人病情给出诊断、处方或用药剂量。
- 观众描述急症时，提醒立即拨打 120 或前往急诊。
- 涉及就医流程（挂号、检查、缴费），引导观众查看医院公众号。

# Live room guidelines

The live stream is health education, not a consultation: no personal diagnoses or prescriptions;
for an emergency, tell viewers to call 120 or go to the emergency department.
"""


def _faq_csv(rows: list[tuple[str, tuple[str, ...], str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(knowledge.IMPORT_COLUMNS)
    for tags, questions, answer, language in rows:
        writer.writerow(["|".join(questions), answer, language, tags])
    return out.getvalue().encode()


def _bureau_rows() -> list[tuple[str, tuple[str, ...], str, str]]:
    data = json.loads(BUREAU_KNOWLEDGE.read_text(encoding="utf-8"))
    tags = {"zh": "zh-CN", "en": "en-US"}
    return [
        (entry["topic"], tuple(entry["questions"]), entry["answer"], tags[entry["language"]])
        for entry in data["entries"]
    ]


def _hospital_rows() -> list[tuple[str, tuple[str, ...], str, str]]:
    return [(tags, questions, answer, "zh-CN") for tags, questions, answer in HOSPITAL_FAQ]


def _import_knowledge(
    actor: Actor, organization: Organization, rows: list[tuple[str, tuple[str, ...], str, str]]
) -> int:
    """Import the entries that are missing (through the CSV import); how many were created."""
    data = _faq_csv(rows)
    plan = knowledge.import_entries_csv(actor, organization, data, commit=False)
    if plan.errors:
        raise RuntimeError(f"demo knowledge does not pass the import's checks: {plan.errors}")
    if plan.created == 0:
        return 0
    return knowledge.import_entries_csv(actor, organization, data, commit=True).created


# --- Avatars --------------------------------------------------------------------------------------


def _consent_clip() -> bytes:
    """Half a second of a 220 Hz tone as 16 kHz mono WAV: a stand-in for the recorded consent."""
    rate = 16_000
    t = np.arange(rate // 2) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(rate)
        clip.writeframes(samples.tobytes())
    return out.getvalue()


def _record_consent(
    actor: Actor, vendor: Organization, avatar: Avatar, demo: DemoAvatar
) -> Consent:
    data = _consent_clip()
    digest = hashlib.sha256(data).hexdigest()
    clip = uploads.start_upload(
        actor,
        vendor,
        purpose=UploadPurpose.CONSENT_CLIP,
        filename=f"consent-{demo.name_en.lower().replace(' ', '-')}.wav",
        content_type="audio/wav",
        size=len(data),
        sha256=digest,
    )
    uploads.receive_chunk(clip, uploads.ContentRange(0, len(data) - 1, len(data)), data)
    clip = uploads.complete_upload(actor, clip, digest)
    return consent.record_consent(
        actor,
        vendor,
        avatar=avatar,
        subject_name=demo.subject,
        statement=(
            f"本人{demo.subject}同意流明数字人工作室使用本人的形象和声音制作数字人“{demo.name_zh}”，"
            f"并同意任何依法聘用该数字人的机构使用，有效期{CONSENT_YEARS}年。"
            f" I, {demo.subject}, agree that Lumen Avatar Studio builds the digital human "
            f"“{demo.name_en}” from my likeness and voice, for use by any organization that "
            f"lawfully hires it, for {CONSENT_YEARS} years."
        ),
        clip=clip,
        scope=ConsentScope.ANY,
        expires_at=timezone.now() + dt.timedelta(days=365 * CONSENT_YEARS),
    )


def _portrait(demo: DemoAvatar) -> build_pipeline.Portrait:
    """A drawn head-and-shoulders picture on the avatar's colour (RGB, 512×512)."""
    size = 512
    top = np.array(demo.colour, dtype=np.float32)
    shade = np.linspace(1.0, 0.6, size, dtype=np.float32)[:, None, None]
    image = np.ascontiguousarray(np.broadcast_to(top * shade, (size, size, 3)).astype(np.uint8))
    dark = tuple(int(c * 0.45) for c in demo.colour)
    cv2.ellipse(image, (256, 520), (200, 140), 0, 180, 360, dark, -1)  # shoulders
    cv2.ellipse(image, (256, 235), (92, 118), 0, 0, 360, (238, 204, 178), -1)  # face
    cv2.ellipse(image, (256, 180), (104, 80), 0, 180, 360, (45, 34, 28), -1)  # hair
    for x in (220, 292):
        cv2.circle(image, (x, 230), 9, (45, 34, 28), -1)
    cv2.ellipse(image, (256, 290), (34, 16), 0, 15, 165, (160, 70, 70), 3)
    cv2.putText(
        image,
        demo.name_en,
        (24, 490),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.0,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    return build_pipeline.Portrait(
        image=image, time_s=0.0, face=(164, 117, 184, 236), sharpness=0.0, score=0.0
    )


def _demo_version(actor: Actor, avatar: Avatar, demo: DemoAvatar, under: Consent) -> AvatarVersion:
    """Version 1 with a bundle written here, then the avatar made ready.

    This stands in for `avatars.builds`, which makes versions only from real footage; the bundle
    has the same layout (portrait.png, voice.json, manifest.json) and says that it is a demo.
    """
    relative = builds.bundle_directory(avatar, 1)
    directory = Path(settings.MEDIA_ROOT) / relative
    portrait = _portrait(demo)
    voice = {
        "pitch_hz": demo.pitch_hz,
        "syllables_per_second": demo.syllables_per_second,
        "method": "demo: stated, not measured",
    }
    build_pipeline.write_parts(directory, portrait, voice)
    build_pipeline.write_manifest(
        directory,
        build_pipeline.describe_portrait(portrait),
        {
            "avatar": str(avatar.pk),
            "version": 1,
            "build": None,
            "consent": str(under.pk),
            "demo": True,
            "created_at": timezone.now().isoformat(),
        },
    )
    version = AvatarVersion.objects.create(
        organization=avatar.organization,
        avatar=avatar,
        number=1,
        consent=under,
        portrait=f"{relative}/portrait.png",
        bundle=relative,
        voice_profile=voice,
        notes="Demo version: made by the demo seed, not built from footage.",
    )
    audit.record(
        actor, avatar.organization, "avatar_version.create", version, after=audit.snapshot(version)
    )
    before = audit.snapshot(avatar)
    avatar.current_version = version
    avatar.status = AvatarStatus.READY
    avatar.save(update_fields=["current_version", "status", "updated_at"])
    audit.record_update(actor, avatar.organization, "avatar.update", avatar, before=before)
    return version


def _valid_consent(vendor: Organization, avatar: Avatar) -> Consent | None:
    return (
        Consent.objects.for_organization(vendor)
        .filter(
            avatar=avatar,
            scope=ConsentScope.ANY,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )


def _publish_avatar(actor: Actor, vendor: Organization, demo: DemoAvatar) -> tuple[Avatar, bool]:
    avatar = Avatar.objects.for_organization(vendor).filter(name_en=demo.name_en).first()
    created = avatar is None
    if avatar is None:
        avatar = catalog.create_avatar(
            actor,
            vendor,
            name_zh=demo.name_zh,
            name_en=demo.name_en,
            languages=list(demo.languages),
            skills=list(demo.skills),
            persona=demo.persona,
            wardrobe=[{"name": name, "description": text} for name, text in demo.wardrobe],
            description=demo.description,
            list_price=demo.list_price,
        )
    if avatar.current_version_id is None:
        under = _valid_consent(vendor, avatar) or _record_consent(actor, vendor, avatar, demo)
        _demo_version(actor, avatar, demo, under)
    if avatar.visibility != Visibility.PUBLIC:
        avatar = catalog.update_avatar(actor, avatar, visibility=Visibility.PUBLIC)
    return avatar, created


# --- Hires ----------------------------------------------------------------------------------------


def _position(actor: Actor, organization: Organization, hire: DemoHire) -> Position:
    position = Position.objects.for_organization(organization).filter(title=hire.title).first()
    return position or positions.create_position(
        actor,
        organization,
        title=hire.title,
        department=hire.department,
        duties=hire.duties,
        required_languages=list(hire.required_languages),
        required_skills=list(hire.required_skills),
        headcount=1,
    )


def _hire(
    actor: Actor, organization: Organization, hire: DemoHire, avatar: Avatar
) -> tuple[Employment, bool]:
    """Hire and onboard the avatar until it is active; steps already taken are skipped."""
    position = _position(actor, organization, hire)
    employment = (
        Employment.objects.for_organization(organization)
        .filter(position=position, avatar=avatar)
        .exclude(status=EmploymentStatus.TERMINATED)
        .first()
    )
    created = employment is None
    if employment is None:
        employment = employments.hire_avatar(
            actor,
            organization,
            avatar=avatar,
            position=position,
            starts_on=employments.local_today(organization),
            seats=hire.seats,
        )
    if employment.status == EmploymentStatus.OFFERED:
        employment = employments.transition_employment(
            actor, employment, EmploymentStatus.ONBOARDING, "Offer accepted · 已接受聘用"
        )
    if employment.status == EmploymentStatus.ONBOARDING:
        if not employment.persona_reviewed or not employment.voice:
            employment = employments.update_employment(
                actor, employment, persona=hire.persona, persona_reviewed=True, voice=hire.voice
            )
        employment = employments.attach_knowledge(
            actor,
            employment,
            entries=list(KnowledgeEntry.objects.for_organization(organization)),
            documents=list(KnowledgeDocument.objects.for_organization(organization)),
        )
        employment = employments.transition_employment(
            actor, employment, EmploymentStatus.ACTIVE, "Onboarding complete · 入职完成"
        )
    return employment, created


def _hospital_guide(actor: Actor, hospital: Organization) -> None:
    documents = KnowledgeDocument.objects.for_organization(hospital)
    if not documents.filter(title=HOSPITAL_GUIDE_TITLE).exists():
        knowledge.create_document(
            actor,
            hospital,
            title=HOSPITAL_GUIDE_TITLE,
            document_format="markdown",
            content=HOSPITAL_GUIDE,
            language="zh-CN",
            tags=["live-room"],
        )


def _owner(organization: Organization) -> Actor:
    owner = Membership.objects.for_organization(organization).get(role=Role.OWNER)
    return Actor(user=owner.user, role=Role.OWNER)


def seed_hr() -> list[str]:
    """Publish the vendor's avatars, stock the knowledge bases, hire; what was created, by name."""
    created: list[str] = []
    organizations = {
        organization.slug: organization
        for organization in Organization.objects.filter(slug__in=(VENDOR, HOSPITAL, BUREAU))
    }
    vendor = organizations[VENDOR]
    vendor_actor = _owner(vendor)
    avatars = {}
    for demo in DEMO_AVATARS:
        avatar, new = _publish_avatar(vendor_actor, vendor, demo)
        avatars[demo.name_en] = avatar
        if new:
            created.append(f"avatar {demo.name_en}")

    hospital, bureau = organizations[HOSPITAL], organizations[BUREAU]
    _hospital_guide(_owner(hospital), hospital)
    for organization, rows in ((hospital, _hospital_rows()), (bureau, _bureau_rows())):
        count = _import_knowledge(_owner(organization), organization, rows)
        if count:
            created.append(f"{count} knowledge entries for {organization.slug}")

    for hire in DEMO_HIRES:
        organization = organizations[hire.organization]
        _employment, new = _hire(_owner(organization), organization, hire, avatars[hire.avatar])
        if new:
            created.append(f"hire of {hire.avatar} at {organization.slug}")
    return created
