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
import wave
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from django.conf import settings
from django.utils import timezone

from avatars import builder, builds, catalog, consent, employments, knowledge, positions, uploads
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

# (tags, Chinese questions, Chinese answer, English questions, English answer)
BUREAU_FAQ: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...], str], ...] = (
    (
        "hours",
        ("办事大厅几点上班？", "市场监管窗口的办公时间是什么？", "周末可以来办业务吗？"),
        "政务服务大厅市场监管窗口周一至周五上午8:30–12:00、下午14:30–17:30办公，周末和法定节假日"
        "休息。本智能服务台全天24小时在线；登记注册、年报等很多业务也可以在政务服务网上随时办理。",
        (
            "When is the service hall open?",
            "What are your office hours?",
            "Can I come at the weekend?",
        ),
        "The market-supervision windows in the government service hall are open Monday to Friday, "
        "8:30–12:00 and 14:30–17:30, and closed at weekends and on public holidays. This digital "
        "service desk answers around the clock, and many services, such as registration and annual "
        "reports, can be done online at any time on the government service portal.",
    ),
    (
        "location",
        ("办事大厅在哪里？", "去哪里办理市场监管业务？"),
        "市场监管业务在市民服务中心一楼政务服务大厅的“市场监管”窗口办理。进门后在取号机取号，"
        "不清楚办什么的可以先到导办台咨询。",
        ("Where is the service hall?", "Where do I go for market-supervision services?"),
        "Go to the market-supervision windows of the government service hall on the ground floor "
        "of the Citizen Service Centre. Take a number at the ticket machine by the entrance; the "
        "help desk there tells you which window you need.",
    ),
    (
        "licensing",
        ("怎么办理个体工商户营业执照？", "开个小店要办什么证？", "个体户执照在哪里申请？"),
        "个体工商户可以在政务服务网上申请，也可以到大厅窗口办理，一般需要经营者身份证和经营场所"
        "使用证明（如房产证或租赁合同）。材料齐全、符合法定形式的，通常当天就能领到营业执照，也可"
        "以申领电子营业执照。经营食品等需要许可的项目，领取执照后还要办理相应的许可。",
        (
            "How do I register as an individual business?",
            "What licence do I need to open a small shop?",
        ),
        "Apply on the government service portal or at a window in the service hall. You usually "
        "need the owner's ID card and proof that you may use the premises (a property "
        "certificate or a lease). When the documents are complete, the business licence is "
        "usually issued the same day, and you can also get an electronic licence. Activities "
        "such as selling food need a permit as well, applied for after the licence.",
    ),
    (
        "registration",
        ("注册公司需要什么材料？", "怎么开办一家有限公司？"),
        "开办有限责任公司可以通过“企业开办一网通办”在线申请，一次提交就能办理营业执照、公章刻制、"
        "发票申领和社保登记等事项。需要准备公司章程、股东身份证明、法定代表人及董事、监事、经理的"
        "任职信息和住所使用证明；企业名称可以在线自主申报。",
        ("What do I need to register a company?", "How do I set up a limited company?"),
        "Apply online through the one-stop business start-up service: one application covers the "
        "business licence, the company seal, invoices and social-insurance registration. Prepare "
        "the articles of association, the shareholders' IDs, details of the legal representative, "
        "directors, supervisor and manager, and proof of the registered address. You can choose "
        "and declare the company name online yourself.",
    ),
    (
        "licensing",
        ("营业执照丢了怎么办？", "营业执照遗失如何补办？"),
        "可以在国家企业信用信息公示系统上免费发布遗失公告，然后在网上或到窗口申请补领，带法定代表人"
        "或经营者的身份证即可。补领期间可以使用电子营业执照。",
        ("I lost my business licence. What should I do?", "How do I replace a lost licence?"),
        "Publish a free loss notice on the National Enterprise Credit Information Publicity "
        "System, then apply for a replacement online or at a window with the legal "
        "representative's or owner's ID card. Meanwhile you can use the electronic business "
        "licence.",
    ),
    (
        "registration",
        ("公司地址变了怎么变更？", "怎么变更经营范围？", "法定代表人变更怎么办理？"),
        "名称、住所、经营范围、法定代表人、注册资本等登记事项变化的，应当自作出变更决议或决定之日"
        "起30日内申请变更登记，可以在网上办理。需要提交变更申请书、相关决议和新的证明材料；变更住所"
        "的还需要新的住所使用证明。",
        (
            "Our company moved. How do we change the address?",
            "How do I change the business scope?",
        ),
        "When the name, address, business scope, legal representative or registered capital "
        "changes, apply for a change of registration within 30 days of the decision; it can be "
        "done online. Submit the application form, the resolution or decision, and the new "
        "supporting documents, such as proof of the new address.",
    ),
    (
        "registration",
        ("公司不做了怎么注销？", "什么是简易注销？"),
        "没有债权债务或者已经清偿完毕、没有未结清税款等情形的企业，可以申请简易注销：在国家企业"
        "信用信息公示系统公示20天，没有异议的就可以申请注销登记。其他企业需要先成立清算组、公告"
        "债权人，再办理一般注销。",
        ("How do I close my company?", "What is simplified deregistration?"),
        "A company without debts, or whose debts and taxes are settled, can use simplified "
        "deregistration: it is announced on the National Enterprise Credit Information Publicity "
        "System for 20 days and, if nobody objects, the company applies to be deregistered. "
        "Other companies first appoint a liquidation group and notify creditors, then deregister "
        "the ordinary way.",
    ),
    (
        "annual-report",
        ("企业年报什么时候报？", "个体户需要报年报吗？", "忘了报年报会怎样？"),
        "企业应当在每年1月1日至6月30日，通过国家企业信用信息公示系统报送上一年度的年度报告；"
        "个体工商户也在同一时间段报送。逾期未报的企业会被列入经营异常名录，补报后可以申请移出。",
        (
            "When is the annual report due?",
            "Do individual businesses file annual reports?",
            "What happens if I miss the annual report?",
        ),
        "Companies file the previous year's annual report on the National Enterprise Credit "
        "Information Publicity System between 1 January and 30 June every year; individual "
        "businesses file in the same period. A company that misses the deadline is put on the "
        "list of abnormal operations and can apply to be removed after filing.",
    ),
    (
        "food-safety",
        ("开餐馆要办什么许可证？", "食品经营许可证怎么申请？", "只卖预包装食品要办许可证吗？"),
        "从事餐饮服务或者销售散装食品的，应当在取得营业执照后申请食品经营许可证，可以在网上提交，"
        "需要经营场所和设备布局图、食品安全管理制度等材料，一般会进行现场核查，在10个工作日内作出"
        "决定。仅销售预包装食品的，不需要许可，办理备案即可。",
        (
            "What permit do I need to open a restaurant?",
            "How do I apply for a food business permit?",
        ),
        "Restaurants and shops selling unpackaged food need a food business permit, applied for "
        "after the business licence; you can apply online with a layout of the premises and "
        "equipment and your food-safety rules. There is usually an on-site check and a decision "
        "within 10 working days. Selling only pre-packaged food needs no permit, just a filing.",
    ),
    (
        "complaints",
        ("怎么投诉商家？", "买的东西有问题去哪里投诉？", "12315怎么投诉？"),
        "可以拨打12315热线，或者通过全国12315平台（网站、App或小程序）在线投诉。请说明商家名称和"
        "地址、购买时间、经过和您的诉求，并保留发票、小票、聊天记录和照片等证据。市场监管部门收到"
        "投诉后，一般在7个工作日内决定是否受理，受理后组织调解。",
        ("How do I complain about a shop?", "Where can I file a consumer complaint?"),
        "Call the 12315 hotline or file online on the national 12315 platform (website, app or "
        "mini-program). Give the business's name and address, when you bought, what happened and "
        "what you ask for, and keep receipts, chat records and photos. We usually decide within "
        "7 working days whether to accept the complaint, then mediate.",
    ),
    (
        "prices",
        ("商家收费比标价高怎么办？", "遇到价格欺诈怎么举报？", "商品没有明码标价可以投诉吗？"),
        "经营者应当明码标价，不得在标价之外加价出售或收取未标明的费用。遇到实收价格高于标价、"
        "先低价吸引再加价、虚构原价打折等情况，请保留价签照片和付款凭证，拨打12315或在全国12315"
        "平台举报。",
        ("I was charged more than the marked price.", "How do I report misleading prices?"),
        "Businesses must mark their prices clearly and may not charge more than the marked price "
        "or add unmarked fees. If you were charged more, lured by a low price and then charged "
        "extra, or shown a fake 'original price', keep a photo of the price tag and your receipt "
        "and report it to 12315.",
    ),
    (
        "weights-and-measures",
        ("买菜缺斤短两怎么办？", "怀疑秤不准去哪里复秤？"),
        "农贸市场一般设有“公平秤”，可以当场复秤。确认分量不足的，可以先要求商家补足或退款；协商不成"
        "的，请保留购物凭证和复秤结果，拨打12315投诉。在计量器具上作弊是违法行为，我们会依法查处。",
        ("The vendor gave me short weight.", "Where can I check whether a scale is accurate?"),
        "Most markets have a public 'fair scale' where you can re-weigh your purchase. If it is "
        "short, ask the vendor to make it up or refund you; if they refuse, keep the receipt and "
        "the re-weighing result and complain to 12315. Tampering with scales is illegal and we "
        "act on it.",
    ),
    (
        "food-safety",
        ("买到过期食品怎么办？", "在饭店吃出问题怎么投诉？", "发现食品安全问题怎么举报？"),
        "请保留食品实物、包装、购物小票和照片，不要丢弃，并拨打12315投诉举报。根据《食品安全法》，"
        "经营明知是不符合食品安全标准的食品的，消费者除要求赔偿损失外，还可以要求支付价款十倍或者"
        "损失三倍的赔偿金；增加赔偿的金额不足一千元的，为一千元。身体不适的，请先就医并保留病历。",
        ("I bought expired food.", "How do I report a food-safety problem?"),
        "Keep the food, its packaging, the receipt and photos, and report it to 12315. Under the "
        "Food Safety Law, if a business knowingly sold food that fails safety standards, you may "
        "claim, besides your losses, ten times the price or three times the loss, and at least "
        "1,000 yuan. If you feel unwell, see a doctor first and keep the medical records.",
    ),
    (
        "online-shopping",
        ("网购的东西可以七天无理由退货吗？", "网店不给退货怎么办？"),
        "通过网络、电视、电话、邮购等方式购买商品，一般自收到商品之日起七日内可以无理由退货，但"
        "定作的商品、鲜活易腐的商品、在线下载或已拆封的音像制品和软件等数字化商品、已交付的报纸"
        "期刊除外。退回的商品应当完好，运费一般由消费者承担，另有约定的除外。商家拒绝的，可以通过"
        "全国12315平台投诉。",
        ("Can I return an online purchase within seven days?", "The online shop refuses a return."),
        "Goods bought online, by TV, phone or mail order can generally be returned without a "
        "reason within seven days of receipt, except made-to-order goods, fresh and perishable "
        "goods, downloaded or unsealed audio-visual products and software, and delivered "
        "newspapers and magazines. Return the goods in good condition; you usually pay the return "
        "postage unless agreed otherwise. If the shop refuses, complain on the 12315 platform.",
    ),
    (
        "prepaid-cards",
        ("办的健身卡商家跑路了怎么办？", "预付卡不给退怎么办？"),
        "请保留办卡合同、付款记录和卡片，尽快通过12315投诉；涉及人数较多或商家失联的，也可以向公安"
        "机关报案。办卡前请选择信誉好的商家，仔细阅读合同，不要一次充值过多。",
        (
            "My gym closed after I bought a membership card.",
            "The shop won't refund my prepaid card.",
        ),
        "Keep the contract, payment records and the card, and complain to 12315 as soon as "
        "possible; if many people are affected or the business has vanished, also report it to "
        "the police. Before buying a prepaid card, choose a reputable business, read the "
        "contract and avoid paying in large amounts.",
    ),
    (
        "counterfeits",
        ("买到假货怎么办？", "怎么举报卖假冒商品的？"),
        "请保留商品、发票和购买记录，拨打12315或者在全国12315平台举报。经营者有欺诈行为的，消费者"
        "可以要求增加赔偿，金额为商品价款的三倍；不足五百元的，为五百元。举报人的信息依法保密。",
        ("I bought a counterfeit product.", "How do I report someone selling fakes?"),
        "Keep the product, the invoice and the purchase record, and report it to 12315 by phone "
        "or on the 12315 platform. If the seller committed fraud, you may claim additional "
        "compensation of three times the price, at least 500 yuan. Whistle-blowers' details are "
        "kept confidential by law.",
    ),
    (
        "product-quality",
        ("家电坏了商家不给修怎么办？", "什么是三包？"),
        "实行“三包”的商品（如多数家用电器、手机），自售出之日起7日内出现性能故障的，可以选择退货、"
        "换货或者修理；15日内出现性能故障的，可以选择换货或者修理；在三包有效期内可以免费修理。"
        "请保留发票和三包凭证；商家不履行的，可以拨打12315投诉。",
        ("My new appliance broke and the shop won't fix it.", "What are the 'three guarantees'?"),
        "For goods under the 'three guarantees' rules (most home appliances and mobile phones), "
        "a performance fault within 7 days of sale lets you choose a refund, a replacement or a "
        "repair; within 15 days, a replacement or a repair; and repairs are free during the "
        "guarantee period. Keep the invoice and guarantee card; if the seller refuses, complain "
        "to 12315.",
    ),
    (
        "special-equipment",
        ("被困电梯怎么办？", "小区电梯经常坏去哪里反映？"),
        "被困时请保持冷静，按下轿厢内的警铃或拨打轿厢内张贴的应急救援电话，不要强行扒门。电梯属于"
        "特种设备，维保不到位、经常出故障的，可以向市场监管部门反映，我们会依法检查使用单位和维保"
        "单位。",
        ("I am stuck in a lift.", "Our building's elevator keeps breaking down."),
        "Stay calm, press the alarm button or call the emergency number posted in the car, and "
        "do not force the doors open. Elevators are special equipment under our supervision: if "
        "one is poorly maintained or often out of order, tell us and we will inspect the owner "
        "and the maintenance company.",
    ),
    (
        "advertising",
        ("看到虚假广告怎么举报？", "保健品宣传能治病可以举报吗？"),
        "广告不得含有虚假或者引人误解的内容；保健食品广告不得声称具有疾病预防、治疗功能。发现虚假"
        "广告的，请截图或拍照记录广告内容、发布渠道和时间，拨打12315或在全国12315平台举报。",
        ("How do I report a false advert?", "A health supplement is advertised as a cure."),
        "Adverts may not be false or misleading, and health-food adverts may not claim to prevent "
        "or cure disease. Take screenshots or photos of the advert, note where and when it "
        "appeared, and report it to 12315.",
    ),
)

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
    rows = []
    for tags, questions_zh, answer_zh, questions_en, answer_en in BUREAU_FAQ:
        rows.append((tags, questions_zh, answer_zh, "zh-CN"))
        rows.append((tags, questions_en, answer_en, "en-US"))
    return rows


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


def _portrait(demo: DemoAvatar) -> builder.Portrait:
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
    return builder.Portrait(
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
    builder.write_parts(directory, portrait, voice)
    builder.write_manifest(
        directory,
        portrait,
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
