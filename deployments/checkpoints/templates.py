"""Jinja chat templates of the Qwen instruct checkpoints, for the tiny test checkpoints.

Why: the tiny checkpoints (deployments/checkpoints/tiny.py) must render prompts exactly like the real
models, so the serving code is exercised against the real prompt formats offline.

- `QWEN2_VL_TEMPLATE`: Qwen2-VL-Instruct's template, verbatim (image/video parts become
  `<|vision_start|><|image_pad|><|vision_end|>` / `...<|video_pad|>...`; "Picture N: " and
  "Video N: " only with `add_vision_id`; default system prompt "You are a helpful assistant.").
- `QWEN2_5_TEMPLATE`: Qwen2.5-Instruct's template (same output; hermes-style `tools` section,
  `<tool_call>` JSON blocks, `tool` messages as `<tool_response>`, default system prompt
  "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.").
- `QWEN2_5_VL_TEMPLATE`: the two combined: Qwen2.5-Instruct's structure and tools section, with
  Qwen2-VL's vision parts and default system prompt. Every message's content may be a string
  or a list of parts (vLLM passes lists to templates that loop over content).
- `QWEN3_VL_TEMPLATE`: Qwen2.5-VL's, with Qwen3-VL's one difference that matters to prompts: no
  default system prompt (no system block unless the conversation or `tools` brings one).
"""

from __future__ import annotations

QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_TOOLS_PREAMBLE = (
    '{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.'
    "\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n"
    '<tools>" }}\n'
    "    {%- for tool in tools %}\n"
    '        {{- "\\n" }}\n'
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name '
    "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n'
    '</tool_call><|im_end|>\\n" }}\n'
)

# The message loop of Qwen2.5-Instruct; `__CONTENT__` is how a message's content is written.
_QWEN2_5_BODY = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- __SYSTEM_CONTENT__ }}\n"
    "    {%- else %}\n"
    "        {{- '__DEFAULT_SYSTEM__' }}\n"
    "    {%- endif %}\n"
    "    " + _TOOLS_PREAMBLE + "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' }}{{- __SYSTEM_CONTENT__ }}{{- '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\n__DEFAULT_SYSTEM__<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' }}__CONTENT__{{- '<|im_end|>' + '\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' }}__CONTENT__\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}__CONTENT__\n"
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

QWEN2_5_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

QWEN2_5_TEMPLATE = (
    _QWEN2_5_BODY.replace("__SYSTEM_CONTENT__", "messages[0]['content']")
    .replace("__DEFAULT_SYSTEM__", QWEN2_5_DEFAULT_SYSTEM)
    .replace("__CONTENT__", "{{- message.content }}")
)

# Content that is a string, or a list of text/image/video parts (Qwen2-VL's rendering).
_VL_CONTENT = (
    "{%- if message.content is string %}{{- message.content }}"
    "{%- else %}{%- for content in message.content %}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content['type'] == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content['text'] }}"
    "{%- endif %}{%- endfor %}{%- endif %}"
)

QWEN2_5_VL_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}\n"
    + _QWEN2_5_BODY.replace(
        "__SYSTEM_CONTENT__",
        "messages[0]['content'] if messages[0]['content'] is string "
        "else messages[0]['content'] | map(attribute='text') | join('')",
    )
    .replace("__DEFAULT_SYSTEM__", "You are a helpful assistant.")
    .replace("__CONTENT__", _VL_CONTENT)
)

QWEN3_VL_TEMPLATE = (
    QWEN2_5_VL_TEMPLATE.replace("{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}", "")
    .replace("{{- 'You are a helpful assistant.' }}", "")
)
