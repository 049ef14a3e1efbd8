// The station's pure rules: what a scanned string is, whether its check character is
// right, whether a typed ID number can be one, and the plain Chinese sentence for every
// refusal the service can give. Nothing here touches the page or the network, so the
// same checks run offline and a browser test can hold them against the service's own
// (python-stdnum) on many generated codes.
"use strict";
(function (root) {
  const DIGITS = "0123456789";
  // The service's resident codes (screening/residents/codes.py): 13 random characters
  // of this alphabet, then an ISO 7064 check character over the same alphabet, as
  // stdnum.iso7064.mod_37_36 computes it with alphabet=CODE_ALPHABET (hybrid MOD 33,32).
  const CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const CODE_LENGTH = 14;

  // ISO 7064 hybrid system (MOD m+1, m) over ``alphabet``; a valid string sums to 1.
  // The same loop as stdnum.iso7064.mod_37_36.checksum.
  function hybridChecksum(text, alphabet) {
    const m = alphabet.length;
    let check = Math.floor(m / 2);
    for (const ch of text) {
      const value = alphabet.indexOf(ch);
      if (value < 0) { return -1; }
      check = ((((check || m) * 2) % (m + 1)) + value) % m;
    }
    return check;
  }
  function barcodeOk(code) {  // tube labels: 14 digits, ISO 7064 MOD 11-10
    return /^\d{14}$/.test(code) && hybridChecksum(code, DIGITS) === 1 && Number(code.slice(0, 13)) > 0;
  }
  function residentCodeOk(code) {
    return code.length === CODE_LENGTH && hybridChecksum(code, CODE_ALPHABET) === 1;
  }

  // GB 11643: 17 digits (6 of area, 8 of birth date, 3 of sequence), then MOD 11-2.
  const PROVINCES = new Set([11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42,
    43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83]);
  function gb11643CheckOk(id) {
    if (!/^\d{17}[\dX]$/.test(id)) { return false; }
    let sum = 0;
    for (let i = 0; i < 17; i++) { sum += Number(id[i]) * (2 ** (17 - i) % 11); }
    const check = (12 - (sum % 11)) % 11;
    return id[17] === (check === 10 ? "X" : String(check));
  }
  function birthDateOk(yyyymmdd, today) {
    const y = Number(yyyymmdd.slice(0, 4)), m = Number(yyyymmdd.slice(4, 6)), d = Number(yyyymmdd.slice(6, 8));
    const born = new Date(Date.UTC(y, m - 1, d));
    if (y < 1880 || born.getUTCFullYear() !== y || born.getUTCMonth() !== m - 1 || born.getUTCDate() !== d) { return false; }
    return born.getTime() <= (today || new Date()).getTime();
  }
  // The county is not checked against the birth year (API.md: IDs carry the county
  // where they were issued, often newer than their holder).
  function prcIdOk(id) {
    return gb11643CheckOk(id) && PROVINCES.has(Number(id.slice(0, 2))) && birthDateOk(id.slice(6, 14));
  }

  // What is wrong with a typed ID number, in Chinese, or "" when it may be right.
  function idNumberProblem(idType, number, nationality) {
    const id = number.trim().toUpperCase();
    if (!id) { return "请填写证件号码"; }
    switch (idType) {
      case "prc_id":
        if (!/^\d{17}[\dX]$/.test(id)) { return "身份证号应为 18 位(前 17 位数字,最后一位数字或 X)"; }
        if (!gb11643CheckOk(id)) { return "身份证号校验位不对,请核对每一位"; }
        if (!PROVINCES.has(Number(id.slice(0, 2)))) { return "身份证号前两位不是有效的省份代码"; }
        if (!birthDateOk(id.slice(6, 14))) { return "身份证号中的出生日期不对"; }
        return "";
      case "hkmo_permit":
        return /^[HM](\d{8}|\d{10})$/.test(id) ? "" : "港澳通行证号应为 H 或 M 加 8 位或 10 位数字";
      case "tw_permit":
        return /^\d{8}$/.test(id) ? "" : "台湾通行证号应为 8 位数字";
      case "foreign_permanent":
        if (/^[A-Z]{3}\d{12}$/.test(id)) { return ""; }
        if (/^9\d{16}[\dX]$/.test(id)) { return gb11643CheckOk(id) ? "" : "永久居留身份证号校验位不对"; }
        return "永久居留身份证号应为 3 个字母加 12 位数字,或以 9 开头的 18 位";
      case "passport":
        if (!/^[A-Z]{3}$/.test((nationality || "").trim().toUpperCase())) { return "护照须填写国籍(三个字母,如 USA)"; }
        return id.length <= 40 ? "" : "证件号码太长";
      default:
        return id.length <= 40 ? "" : "证件号码太长";
    }
  }

  // What a scanned or typed string is. An ID-card reader types the 18-character
  // number like a keyboard, so an 18-character PRC ID shape is a walk-in.
  function classify(raw) {
    const code = (raw || "").trim().toUpperCase();
    if (!code) { return { kind: "empty", code }; }
    if (/^\d{14}$/.test(code)) {
      if (barcodeOk(code)) { return { kind: "tube", code }; }
      if (residentCodeOk(code)) { return { kind: "resident", code }; }
      return { kind: "bad-tube", code };
    }
    if (/^\d{17}[\dX]$/.test(code)) {
      // the 18-digit foreign permanent resident ID starts with 9 (no province does)
      const idType = code[0] === "9" ? "foreign_permanent" : "prc_id";
      const ok = idType === "prc_id" ? prcIdOk(code) : gb11643CheckOk(code);
      return { kind: ok ? "id-card" : "bad-id-card", code, idType };
    }
    if (code.length === CODE_LENGTH && [...code].every((c) => CODE_ALPHABET.includes(c))) {
      return { kind: residentCodeOk(code) ? "resident" : "bad-resident", code };
    }
    return { kind: "unknown", code };
  }

  function maskName(name) {
    const n = [...(name || "").replace(/\s+/g, "")];
    if (n.length <= 1) { return "*"; }
    if (n.length === 2) { return n[0] + "*"; }
    return n[0] + "*".repeat(n.length - 2) + n[n.length - 1];
  }
  function maskId(id) {
    const keep = id.length >= 12 ? 4 : 1;
    return id.length <= keep * 2 ? "*".repeat(id.length) : id.slice(0, keep) + "*".repeat(id.length - 2 * keep) + id.slice(-keep);
  }
  // "张*明" read aloud as "张某明": a speech engine would say "星号" for the asterisk.
  function spokenName(masked) { return (masked || "").replace(/\*+/g, "某"); }

  // Every problem type the station can meet: what happened, and what to do next.
  const PROBLEMS = {
    "bad-barcode": ["这支试管不是本轮发给本采样点的,或条码校验错误", "请换一支本采样点本轮的试管"],
    "unknown-resident": ["查无此居民码", "请让居民重新出示码;仍不行就按“无码人员登记”手工登记"],
    "bad-resident-code": ["居民码校验错误(扫错或输错)", "请重新扫描;仍不行就按“无码人员登记”手工登记"],
    "tube-full": ["试管已满", "请封管后换新管"],
    "tube-sealed": ["试管已封管,不能再加样本", "请换一支新试管"],
    "tube-empty": ["试管里没有登记成功的样本,不能封管", "请核对这支试管;空管可直接作废"],
    "already-in-tube": ["此人已在这支试管中", "无需再采,请下一位"],
    "already-sampled": ["此人本轮已在其他混管中采样", "无需再采;如需复采请联系指挥部"],
    "needs-single": ["此人有混管异常待复核,必须单人单管采样", "请取一支单管为此人采样"],
    "round-closed": ["本轮筛查已结束,结束后采集的样本不再接收", "请联系指挥部"],
    "forbidden": ["这支试管属于其他采样点,或本令牌无权这样做", "请使用本采样点的试管;令牌不对请重新登录"],
    "unauthenticated": ["令牌无效或已被吊销", "请重新登录;未上传的记录保留在本机"],
    "invalid-event": ["这条记录格式有误,服务无法读取", "请联系管理员;此人可能需要重新登记采样"],
    "invalid-request": ["上传的内容格式有误", "记录都保留在本机;请联系管理员"],
    "tube-kind-mismatch": ["试管类型不符(混管/单管)", "请换对应类型的试管,或切换采样方式"],
    "identity-conflict": ["此证件号已登记为另一个姓名", "请核对证件上的姓名;确有误请联系管理员"],
    "invalid-id-number": ["证件号码不正确", "请核对证件号码后重新登记"],
    "event-reused": ["记录编号与另一条记录重复", "请联系管理员"],
    "not-found": ["找不到本轮次或这支试管", "请检查所选轮次;仍不行请联系管理员"],
    "payload-too-large": ["一次上传的内容太多", "记录保留在本机,会分批重新上传"],
    "database-unavailable": ["服务暂时不可用", "记录保留在本机,恢复后自动上传"],
    "too-many-requests": ["操作太频繁", "请稍等片刻再试"],
    "duplicate": ["这条记录已经存在", "无需处理"],
    "tube-not-sealed": ["试管还没有封管", "请先封管再装箱"],
    "tube-in-box": ["试管已经装在另一个箱子里", "请核对箱号"],
    "box-state": ["这个转运箱已发运或已接收", "请换一个新箱子"],
    "unknown-district": ["本采样点所属的区在系统里找不到", "请联系管理员核对采样点设置"],
    "bad-request": ["请求有误,服务无法处理", "请联系管理员"],
    "conflict": ["与服务里已有的记录冲突", "请联系管理员"],
    "internal-error": ["服务内部出错", "记录保留在本机,会自动重试;一直不行请联系管理员"],
  };
  const UNKNOWN_PROBLEM = ["服务拒绝了这条记录", "请联系管理员"];
  function problemText(type) {
    const [what, next] = PROBLEMS[type] || UNKNOWN_PROBLEM;
    return { what, next };
  }

  root.StationRules = {
    CODE_ALPHABET, hybridChecksum, barcodeOk, residentCodeOk, prcIdOk, gb11643CheckOk,
    idNumberProblem, classify, maskName, maskId, spokenName, problemText, PROBLEMS,
  };
})(window);
