//! Labels files (`index<TAB>synset<TAB>name` or one name per line): an error or labels
//! whose every index has a name.
#![no_main]

use cascade::runtime::Labels;
use cascade_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let Ok(labels) = Labels::parse(text) else {
        return;
    };
    assert!(!labels.is_empty());
    assert!(labels.len() <= text.lines().count());
    for i in 0..labels.len() {
        let name = labels.name(i);
        let first = labels.index_of_name(name).expect("a name is found");
        assert!(first <= i);
    }
    assert_eq!(labels.name(labels.len()), "?");
});
