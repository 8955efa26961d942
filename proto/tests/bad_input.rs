//! Property tests of parsing untrusted text: any `.properties` text and any duration either
//! parses or is refused with a located reason, never a panic; well-formed files read back the
//! entries they were written with.

use std::path::Path;

use proptest::prelude::*;
use shoal_proto::properties::{parse_duration, PropertiesFile};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_parses_or_is_refused(text in any::<String>()) {
        let _ = PropertiesFile::parse(Path::new("fuzz.properties"), &text);
    }

    #[test]
    fn any_line_soup_parses_or_is_refused(
        lines in prop::collection::vec("[ \\t#!=:a-z.\\\\\\-0-9\u{e9}]{0,40}", 0..30)
    ) {
        let _ = PropertiesFile::parse(Path::new("fuzz.properties"), &lines.join("\n"));
    }

    #[test]
    fn written_entries_read_back(
        entries in prop::collection::btree_map("[a-z][a-z0-9.\\-]{0,20}", "[A-Za-z0-9/_.\\-]{0,30}", 0..20)
    ) {
        let text: String = entries.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let file = PropertiesFile::parse(Path::new("fuzz.properties"), &text)
            .expect("well-formed entries parse");
        for (key, value) in &entries {
            prop_assert_eq!(&file.entries.get(key.as_str()).expect("every key").0, value);
        }
    }

    #[test]
    fn any_duration_text_parses_or_is_refused(text in any::<String>()) {
        let _ = parse_duration(&text);
    }
}
