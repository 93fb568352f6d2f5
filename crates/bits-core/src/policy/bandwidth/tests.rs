use super::*;

fn at(day: u32, h: u32, m: u32) -> WeekTime {
    WeekTime {
        day,
        minute: h * 60 + m,
    }
}

#[test]
fn rates_are_bytes_per_second_with_decimal_suffixes() {
    assert_eq!(parse_rate("512k"), Ok(Cap::Rate(512_000)));
    assert_eq!(parse_rate("1.5M"), Ok(Cap::Rate(1_500_000)));
    assert_eq!(parse_rate("2G"), Ok(Cap::Rate(2_000_000_000)));
    assert_eq!(parse_rate(" 800000 "), Ok(Cap::Rate(800_000)));
    assert_eq!(parse_rate("OFF"), Ok(Cap::Unlimited));
    assert_eq!(parse_rate("0"), Ok(Cap::Blocked));
    assert_eq!(parse_rate("0k"), Ok(Cap::Blocked));
    for bad in [
        "",
        "k",
        "-5",
        "1e9",
        "5 M",
        "fast",
        "1.2.3k",
        "9999999999999999999",
    ] {
        assert!(parse_rate(bad).is_err(), "{bad}");
    }
    for r in [512_000, 1_500_000, 2_000_000_000, 800_123, 7] {
        assert_eq!(
            parse_rate(&format_rate(r)),
            Ok(Cap::Rate(r)),
            "{}",
            format_rate(r)
        );
    }
}

#[test]
fn a_lone_rate_holds_all_week() {
    let s = Schedule::parse("512k").unwrap();
    assert_eq!(s.cap_at(at(0, 0, 0)), Cap::Rate(512_000));
    assert_eq!(s.cap_at(at(6, 23, 59)), Cap::Rate(512_000));
}

#[test]
fn every_day_windows_last_until_the_next_entry_and_wrap_around() {
    let s = Schedule::parse("08:00,512k 18:00,off").unwrap();
    assert_eq!(
        s.cap_at(at(2, 7, 59)),
        Cap::Unlimited,
        "before 08:00: the evening's window"
    );
    assert_eq!(s.cap_at(at(2, 8, 0)), Cap::Rate(512_000));
    assert_eq!(s.cap_at(at(2, 17, 59)), Cap::Rate(512_000));
    assert_eq!(s.cap_at(at(2, 18, 0)), Cap::Unlimited);
    assert_eq!(s.minutes_to_next_change(at(2, 17, 0)), 60);
    assert_eq!(s.minutes_to_next_change(at(2, 18, 0)), 14 * 60);
}

#[test]
fn day_entries_start_windows_on_their_day_only() {
    let s = Schedule::parse("Mon-08:00,1M Sat-00:00,off").unwrap();
    assert_eq!(
        s.cap_at(at(0, 7, 0)),
        Cap::Unlimited,
        "Monday before 08:00: the weekend's"
    );
    assert_eq!(s.cap_at(at(3, 12, 0)), Cap::Rate(1_000_000));
    assert_eq!(s.cap_at(at(5, 0, 0)), Cap::Unlimited);
    assert_eq!(s.cap_at(at(6, 23, 59)), Cap::Unlimited);
    assert_eq!(s.minutes_to_next_change(at(6, 23, 0)), 9 * 60);
}

#[test]
fn zero_blocks_background_jobs_in_its_window() {
    let s = Schedule::parse("23:00,off 07:00,0").unwrap();
    assert_eq!(s.cap_at(at(1, 12, 0)), Cap::Blocked);
    assert_eq!(s.cap_at(at(1, 23, 30)), Cap::Unlimited);
    assert_eq!(s.cap_at(at(2, 6, 59)), Cap::Unlimited);
}

#[test]
fn a_day_entry_wins_over_an_every_day_one_at_the_same_moment() {
    let s = Schedule::parse("08:00,1M Sun-08:00,off").unwrap();
    assert_eq!(s.cap_at(at(6, 9, 0)), Cap::Unlimited);
    assert_eq!(s.cap_at(at(5, 9, 0)), Cap::Rate(1_000_000));
}

#[test]
fn schedules_are_shown_as_written_and_read_back() {
    for text in [
        "08:00,512k 18:00,off",
        "Mon-08:00,1.5M Sat-00:00,off",
        "23:00,off 07:00,0",
    ] {
        let s = Schedule::parse(text).unwrap();
        assert_eq!(s.to_string(), text);
        assert_eq!(Schedule::parse(&s.to_string()).unwrap(), s);
    }
}

#[test]
fn bad_schedules_say_what_is_wrong() {
    assert_eq!(Schedule::parse("  "), Err(PolicyError::Empty));
    for bad in [
        "25:00,1M",
        "08:60,1M",
        "Mon08:00,1M",
        "Xyz-08:00,1M",
        "08:00",
        "08:00,fast",
        "8,1M",
    ] {
        let e = Schedule::parse(bad).unwrap_err();
        assert!(
            e.to_string().contains(bad.split(',').next().unwrap())
                || matches!(e, PolicyError::Rate(_)),
            "{bad}: {e}"
        );
    }
    assert!(matches!(
        Schedule::parse("08:00,1M 08:00,2M"),
        Err(PolicyError::Duplicate(_))
    ));
}
