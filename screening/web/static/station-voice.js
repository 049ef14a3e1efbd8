// Sound for clerks who do not look at the screen: a high beep for "go ahead and swab",
// a low buzz for "stop", and spoken prompts (Web Speech API, a Chinese voice where the
// device has one). A device without sound or speech simply stays silent.
"use strict";
(function (root) {
  let audio = null;

  function beep(ok) {
    try {
      const Ctx = root.AudioContext || root.webkitAudioContext;
      if (!Ctx) { return; }
      audio = audio || new Ctx();
      const o = audio.createOscillator(); const g = audio.createGain();
      o.frequency.value = ok ? 880 : 220; o.type = ok ? "sine" : "square";
      o.connect(g); g.connect(audio.destination); g.gain.value = 0.15;
      o.start(); o.stop(audio.currentTime + (ok ? 0.08 : 0.4));
    } catch (e) { /* no sound on this device */ }
  }

  function chineseVoice(synth) {
    const voices = (synth.getVoices && synth.getVoices()) || [];
    const zh = (v) => /^zh/i.test(v.lang || "");
    return voices.find((v) => zh(v) && /CN|Hans/i.test(v.lang)) || voices.find(zh) || null;
  }

  function speak(text) {
    try {
      const synth = root.speechSynthesis;
      const Utterance = root.SpeechSynthesisUtterance;
      if (!synth || !Utterance || !text) { return; }
      const u = new Utterance(text);
      u.lang = "zh-CN";
      const voice = chineseVoice(synth);
      if (voice) { u.voice = voice; }
      u.rate = 1.1;
      synth.cancel();  // the newest prompt matters; never a backlog of old ones
      synth.speak(u);
    } catch (e) { /* no speech on this device */ }
  }

  root.StationVoice = { beep, speak };
})(window);
