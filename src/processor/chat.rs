//! Conversation messages → prompt text with `<image>` markers, rendered by the checkpoint's own
//! Jinja chat template.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::processor::image::ImageInput;
use crate::processor::media::video::VideoInput;

/// Who speaks a message.
///
/// ```
/// use vlm::{Message, Role};
///
/// assert_eq!(Message::system("Be brief.").role, Role::System);
/// assert_eq!(Message::user([], "Hi").role, Role::User);
/// assert_eq!(Message::assistant("Hello!").role, Role::Assistant);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person asking.
    User,
    /// The model's earlier answers.
    Assistant,
}

/// One part of a message.
///
/// ```
/// use vlm::{Content, ImageInput, Message, Role};
///
/// // Text around an image, in the order given (Message::user puts images first).
/// let message = Message::new(Role::User, vec![
///     Content::Text("Here is my desk:".into()),
///     Content::Image(ImageInput::Path("desk.jpg".into())),
///     Content::Text("What is missing?".into()),
/// ]);
/// assert_eq!(message.images().count(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// An image, placed where it appears among the text parts.
    Image(ImageInput),
    /// A video, placed where it appears among the text parts; it becomes its sampled frames
    /// with their timestamps.
    Video(VideoInput),
}

/// A chat message: a role and its parts in order.
///
/// ```
/// use vlm::{Content, ImageInput, Message};
///
/// let photo = ImageInput::Path("photo.jpg".into());
/// let message = Message::user([photo.clone()], "Describe this image.");
/// assert_eq!(message.content, [Content::Image(photo), Content::Text("Describe this image.".into())]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// Text and image parts, in order.
    pub content: Vec<Content>,
}

impl Message {
    /// A message with the given parts.
    ///
    /// ```
    /// # use vlm::{Content, Message, Role};
    /// let m = Message::new(Role::User, vec![Content::Text("Hi".into())]);
    /// assert_eq!(m, Message::user([], "Hi"));
    /// ```
    pub fn new(role: Role, content: Vec<Content>) -> Self {
        Message { role, content }
    }

    /// A user message: the images first, then the text (the order SmolVLM was trained with).
    ///
    /// ```
    /// # use vlm::{ImageInput, Message};
    /// let (a, b) = (ImageInput::Path("a.png".into()), ImageInput::Path("b.png".into()));
    /// let m = Message::user([a, b], "What changed between these two?");
    /// assert_eq!(m.images().count(), 2);
    /// assert_eq!(m.content.len(), 3);
    /// ```
    pub fn user(images: impl IntoIterator<Item = ImageInput>, text: impl Into<String>) -> Self {
        let mut content: Vec<Content> = images.into_iter().map(Content::Image).collect();
        let text = text.into();
        if !text.is_empty() || content.is_empty() {
            content.push(Content::Text(text));
        }
        Message::new(Role::User, content)
    }

    /// A system message.
    ///
    /// ```
    /// # use vlm::{Content, Message};
    /// let m = Message::system("Answer in French.");
    /// assert_eq!(m.content, [Content::Text("Answer in French.".into())]);
    /// ```
    pub fn system(text: impl Into<String>) -> Self {
        Message::new(Role::System, vec![Content::Text(text.into())])
    }

    /// An assistant message (an earlier answer).
    ///
    /// ```
    /// # use vlm::{Message, Role};
    /// let m = Message::assistant("A cat on a sofa.");
    /// assert_eq!((m.role, m.images().count()), (Role::Assistant, 0));
    /// ```
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::new(Role::Assistant, vec![Content::Text(text.into())])
    }

    /// A user message: a video first, then the text.
    ///
    /// ```
    /// # use vlm::{Message, VideoInput};
    /// let m = Message::user_video(VideoInput::path("clip.mp4"), "What happens?");
    /// assert_eq!(m.videos().count(), 1);
    /// ```
    pub fn user_video(video: VideoInput, text: impl Into<String>) -> Self {
        let mut content = vec![Content::Video(video)];
        let text = text.into();
        if !text.is_empty() {
            content.push(Content::Text(text));
        }
        Message::new(Role::User, content)
    }

    /// The images of this message, in order.
    ///
    /// ```
    /// # use vlm::{ImageInput, Message};
    /// let m = Message::user([ImageInput::Encoded(vec![1, 2, 3])], "What is it?");
    /// assert_eq!(m.images().collect::<Vec<_>>(), [&ImageInput::Encoded(vec![1, 2, 3])]);
    /// ```
    pub fn images(&self) -> impl Iterator<Item = &ImageInput> {
        self.content.iter().filter_map(|c| match c {
            Content::Image(img) => Some(img),
            Content::Text(_) | Content::Video(_) => None,
        })
    }

    /// The videos of this message, in order.
    pub fn videos(&self) -> impl Iterator<Item = &VideoInput> {
        self.content.iter().filter_map(|c| match c {
            Content::Video(v) => Some(v),
            Content::Text(_) | Content::Image(_) => None,
        })
    }
}

/// The shape transformers hands to chat templates: `{"type": "text", "text": ...}` or
/// `{"type": "image"}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TemplatePart<'a> {
    Text { text: &'a str },
    Image {},
    Video {},
}

#[derive(Serialize)]
struct TemplateMessage<'a> {
    role: Role,
    content: TemplateContent<'a>,
}

/// Multimodal templates index `content` as a list of parts; text-only templates (such as the
/// ChatML template of a SmolLM2 GGUF) concatenate it as a string.
#[derive(Serialize)]
#[serde(untagged)]
enum TemplateContent<'a> {
    Parts(Vec<TemplatePart<'a>>),
    Text(String),
}

/// A compiled chat template.
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    /// Whether the template reads content parts by their `type` (multimodal templates do).
    reads_parts: bool,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source` with the settings transformers uses (`trim_blocks`, `lstrip_blocks`,
    /// Python string methods, `raise_exception`).
    pub(crate) fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| Error::Template(format!("cannot parse: {e}")))?;
        let reads_parts = ["['type']", "[\"type\"]", ".type"]
            .iter()
            .any(|p| source.contains(p));
        Ok(ChatTemplate {
            env,
            reads_parts,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Renders `messages` with the generation prompt appended when `add_generation_prompt`.
    ///
    /// Content goes to the template as a list of parts, as transformers' processors pass it,
    /// unless the template never looks at part types and no message has an image: text-only
    /// templates (such as a SmolLM2 GGUF's ChatML) expect each message's text as a string.
    pub(crate) fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let has_images = messages
            .iter()
            .any(|m| m.images().next().is_some() || m.videos().next().is_some());
        if !self.reads_parts && !has_images {
            return self.render_as(messages, add_generation_prompt, true);
        }
        match self.render_as(messages, add_generation_prompt, false) {
            Ok(s) => Ok(s),
            Err(first) => {
                if has_images {
                    return Err(first);
                }
                self.render_as(messages, add_generation_prompt, true)
                    .map_err(|_| first)
            }
        }
    }

    fn render_as(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        as_text: bool,
    ) -> Result<String> {
        let messages: Vec<TemplateMessage<'_>> = messages
            .iter()
            .map(|m| TemplateMessage {
                role: m.role,
                content: if as_text {
                    TemplateContent::Text(
                        m.content
                            .iter()
                            .filter_map(|c| match c {
                                Content::Text(t) => Some(t.as_str()),
                                Content::Image(_) | Content::Video(_) => None,
                            })
                            .collect(),
                    )
                } else {
                    TemplateContent::Parts(
                        m.content
                            .iter()
                            .map(|c| match c {
                                Content::Text(t) => TemplatePart::Text { text: t },
                                Content::Image(_) => TemplatePart::Image {},
                                Content::Video(_) => TemplatePart::Video {},
                            })
                            .collect(),
                    )
                },
            })
            .collect();
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| Error::Template(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| Error::Template(format!("cannot render: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLVLM: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

    #[test]
    fn renders_the_smolvlm_template() {
        let t = ChatTemplate::new(SMOLVLM, "<|im_start|>", "<end_of_utterance>").unwrap();
        let img = ImageInput::Path("a.png".into());
        let out = t
            .render(
                &[Message::user([img.clone()], "Can you describe this image?")],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>User:<image>Can you describe this image?<end_of_utterance>\nAssistant:"
        );
        let msgs = [
            Message::system("Be brief."),
            Message::new(
                Role::User,
                vec![Content::Text("What is this?".into()), Content::Image(img)],
            ),
            Message::assistant(" A cat."),
            Message::user([], "Sure?"),
        ];
        let out = t.render(&msgs, false).unwrap();
        assert_eq!(
            out,
            "<|im_start|>System: Be brief.<end_of_utterance>\nUser: What is this?<image><end_of_utterance>\nAssistant:  A cat.<end_of_utterance>\nUser: Sure?<end_of_utterance>\n"
        );
    }

    #[test]
    fn text_only_templates_get_string_content() {
        let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let t = ChatTemplate::new(chatml, "", "").unwrap();
        let out = t.render(&[Message::user([], "Hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn template_errors_are_reported() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        let err = t.render(&[], true).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }
}
